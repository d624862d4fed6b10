"""``tweetdomains pretrain``: language-model pre-training of the classifier's encoder (ULMFiT-style).

Labeled tweets are scarce; unlabeled ones are not. This job trains the classifier's own
embedding table and recurrent layer as a language model on plain tweets
(:mod:`tweetdomains_trainer.language_model`), then publishes just those weights under
``pretrained/`` (:mod:`tweetdomains_trainer.encoder`) for ``tweetdomains train`` to start
from. The encoder is built by :func:`tweetdomains.model.build_model`, so its parameter names
(``embedding.weight``, ``recurrent.weight_ih_l0``, ...) are a classifier's, and loading them
is a state-dict copy.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tweetdomains.model import build_model
from tweetdomains.registry import new_run_id
from tweetdomains.store import ObjectStore, open_store
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer.data import train_batches
from tweetdomains_trainer.encoder import encoder_registry, publish_encoder
from tweetdomains_trainer.language_model import (
    LanguageModel,
    frequency_ranks,
    lm_eval,
    lm_train_step,
    softmax_cutoffs,
)
from tweetdomains_trainer.pretrain_corpus import Corpus, load_corpus
from tweetdomains_trainer.pretrain_options import PretrainOptions
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.steps import make_optimizer, minilm_embeddings, resolve_device, seed_everything

WEIGHT_DECAY = 0.01  # AdamW; none on the embedding table (see steps.make_optimizer)


@dataclass
class PretrainResult:
    """What a run produced: the kept epoch's encoder tensors; ``published`` is False for dry runs."""

    run_id: str
    metrics: dict[str, Any]
    state: dict[str, torch.Tensor]
    vocab: Vocabulary
    history: list[dict[str, Any]] = field(default_factory=list)
    published: bool = False

    def summary_line(self) -> str:
        """The JSON object the command prints last."""
        out: dict[str, Any] = {"run_id": self.run_id, "published": self.published}
        out.update({k: self.metrics[k] for k in ("texts", "tokens", "val_perplexity", "seconds")})
        return json.dumps(out)


def pretrain(options: PretrainOptions, store: ObjectStore | None = None) -> PretrainResult:
    """Pre-train, keep the epoch of lowest validation perplexity, publish it (see module doc).

    Raises ValueError for unusable data or options, FileNotFoundError for ``--data`` that
    matches no file.
    """
    started = time.perf_counter()
    store = store or open_store(options.store)
    progress = Progress(options.progress)
    say = progress.say
    run_id = options.run_id or new_run_id("lm")
    if options.run_id and not options.dry_run and encoder_registry(store).is_published(run_id):
        raise ValueError(f"pretrained run {run_id!r} is already published: choose another --run-id")
    if options.threads:
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    seed_everything(options.seed)

    corpus = load_corpus(
        store,
        options.data,
        options.max_texts,
        options.validation_percent,
        options.min_count,
        options.max_tokens,
        options.seed,
    )
    vocab = corpus.vocab
    say(
        f"corpus: read {corpus.texts_read:,} texts, {corpus.duplicates:,} duplicates, "
        f"{corpus.too_short:,} too short; train {len(corpus.train):,} texts "
        f"({len(corpus.train.ids):,} tokens), validation {len(corpus.validation):,} "
        f"({len(corpus.validation.ids):,} tokens); vocabulary {len(vocab):,} wordpieces"
    )
    classifier = build_model(options.model_config(len(vocab)))
    copied = 0
    if options.init_embeddings == "minilm":
        copied = minilm_embeddings(classifier, vocab)
        say(f"embeddings: {copied:,} of {len(vocab):,} rows from MiniLM")
    cutoffs = softmax_cutoffs(len(vocab))
    model = LanguageModel(classifier, cutoffs).to(device)
    rank_of = torch.from_numpy(frequency_ranks(corpus.train.ids, len(vocab))).to(device)
    optimizer = make_optimizer(model, options.lr, WEIGHT_DECAY)
    encoder_parameters = sum(v.numel() for v in model.encoder_state().values())
    say(
        f"run {run_id}: {options.model} language model on {device}, {encoder_parameters:,} encoder "
        f"parameters, adaptive softmax cutoffs {cutoffs}"
    )

    history: list[dict[str, Any]] = []
    best_nll, best_epoch, best_state = math.inf, 0, model.encoder_state()
    for epoch in range(options.epochs):
        history.append(_run_epoch(model, corpus, rank_of, optimizer, device, options, epoch, progress))
        h = history[-1]
        say(
            f"epoch {epoch + 1}/{options.epochs}: train loss {h['train_loss']:.4f}, "
            f"val loss {h['val_loss']:.4f}, val perplexity {h['val_perplexity']:.1f} "
            f"({h['seconds']:.1f} s, {h['tokens_per_second']:,.0f} tokens/s)"
        )
        if h["val_loss"] < best_nll:
            best_nll, best_epoch, best_state = h["val_loss"], epoch + 1, model.encoder_state()
        if options.dry_run:
            break

    metrics: dict[str, Any] = {
        "texts": len(corpus.train) + len(corpus.validation),
        "tokens": len(corpus.train.ids) + len(corpus.validation.ids),
        "val_perplexity": round(math.exp(best_nll), 3),
        "seconds": round(time.perf_counter() - started, 2),
        "best_epoch": best_epoch,
        "history": history,
        "train": {"texts": len(corpus.train), "tokens": len(corpus.train.ids)},
        "validation": {"texts": len(corpus.validation), "tokens": len(corpus.validation.ids)},
        "texts_read": corpus.texts_read,
        "duplicates": corpus.duplicates,
        "too_short": corpus.too_short,
        "data": corpus.sources,
        "vocab_size": len(vocab),
        "embeddings_from_minilm": copied,
        "softmax_cutoffs": cutoffs,
        "train_seconds": round(sum(h["seconds"] for h in history), 2),
        "device": str(device),
        "options": options.to_dict(),
    }
    result = PretrainResult(run_id, metrics, best_state, vocab, history)
    if options.dry_run:
        return result
    publish_encoder(store, run_id, best_state, vocab, options.encoder_config(len(vocab)), metrics)
    result.published = True
    say(f"published pretrained encoder {run_id} (val perplexity {metrics['val_perplexity']:.1f})")
    return result


def _run_epoch(
    model: LanguageModel,
    corpus: Corpus,
    rank_of: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    options: PretrainOptions,
    epoch: int,
    progress: Progress,
) -> dict[str, Any]:
    """One pass over the train side (one batch for a dry run), then validation: a history row."""
    started = time.perf_counter()
    batches = train_batches(
        corpus.train.lengths, options.batch_size, np.random.default_rng([options.seed, epoch])
    )
    if options.dry_run:
        batches = batches[:1]
    model.train()
    losses: list[float] = []
    tokens = 0
    for rows in progress.track(batches, f"epoch {epoch + 1}/{options.epochs}", losses):
        ids, lengths, _ = corpus.train.batch(rows)
        losses.append(lm_train_step(model, (ids, lengths), rank_of, optimizer, device))
        tokens += int(lengths.sum())
    seconds = time.perf_counter() - started
    val_nll, _ = lm_eval(model, corpus.validation, rank_of, device, 1 if options.dry_run else None)
    return {
        "epoch": epoch + 1,
        "train_loss": round(float(np.mean(losses)), 5),
        "val_loss": round(val_nll, 5),
        "val_perplexity": round(math.exp(val_nll), 3),
        "tokens": tokens,
        "tokens_per_second": round(tokens / seconds, 1),
        "seconds": round(seconds, 2),
    }
