"""``tweetdomains pretrain``: language-model pre-training of the classifier's encoder (ULMFiT-style).

Labeled tweets are scarce; unlabeled ones are not. This job trains the classifier's own
embedding table and recurrent layer as a language model on plain tweets, then publishes just
those weights for ``tweetdomains train`` to start from. The encoder is built by
:func:`tweetdomains.model.build_model`, so its parameter names (``embedding.weight``,
``recurrent.weight_ih_l0``, ...) are a classifier's, and loading them is a state-dict copy.

The objective is ELMo's bidirectional LM: the forward direction's output at step ``t``
predicts token ``t + 1`` and the backward direction's output predicts token ``t - 1``. The two
directions of one recurrent layer never see each other's states, so neither sees the token it
predicts; with more layers they would (layer 2 reads both directions of layer 1), which is why
a bidirectional encoder is pre-trained with one layer only. Each direction has its own
adaptive softmax over the wordpieces, ranked by corpus frequency, so the 2k most frequent
pieces cost a full softmax and the long tail a fraction of one: a CPU epoch stays affordable.

Store layout (the model registry's scheme under another prefix)::

    pretrained/<run-id>/encoder.safetensors, vocab.json, config.json, metrics.json, manifest.json
    pretrained/latest.json   {"run_id": ...}   (written last, in one atomic write)
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from tqdm import tqdm

from tweetdomains import codecs
from tweetdomains.dataset import split_of, store_records
from tweetdomains.model import ModelConfig, RecurrentClassifier, build_model
from tweetdomains.registry import MANIFEST, Registry, RegistryError, new_run_id
from tweetdomains.store import ObjectNotFound, ObjectStore, open_store
from tweetdomains.text import content_hash, normalize, tokenize
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer.data import EncodedSplit, build_vocab, encode_split, eval_batches, train_batches
from tweetdomains_trainer.train import (
    autocast,
    make_optimizer,
    optimizer_step,
    resolve_device,
    seed_everything,
)

log = logging.getLogger(__name__)

PRETRAINED_PREFIX = "pretrained"
LATEST_KEY = f"{PRETRAINED_PREFIX}/latest.json"
ENCODER = "encoder.safetensors"
# The classifier modules the language model trains; everything else (the head) it never sees.
ENCODER_MODULES = ("embedding", "recurrent")
# What a classifier must share with the encoder for the weights to fit (``config.json`` keys,
# named as in :class:`ModelConfig`).
MATCHING_FIELDS = ("kind", "embedding_dim", "hidden_dim", "recurrent_layers", "bidirectional", "vocab_size")
WEIGHT_DECAY = 0.01  # AdamW; none on the embedding table (see train.make_optimizer)
CLIP_NORM = 1.0
# Adaptive softmax cluster bounds, in frequency ranks: a full softmax over the 2k most frequent
# wordpieces, two cheaper tail clusters for the rest.
SOFTMAX_CUTOFFS = (2000, 10_000)
EVAL_BATCH_SIZE = 256


@dataclass
class PretrainOptions:
    """Everything ``tweetdomains pretrain`` accepts; defaults are the quality recipe's encoder."""

    store: str = "var/store"
    data: list[str] | None = None
    max_texts: int | None = None
    vocab: str = "wordpiece"
    min_count: int = 2
    init_embeddings: str = "minilm"
    model: str = "lstm"
    embedding_dim: int = 384
    hidden_dim: int = 192
    recurrent_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    lr: float = 2e-3
    epochs: int = 1
    batch_size: int = 64
    max_tokens: int = 64
    validation_percent: int = 5
    seed: int = 13
    device: str = "auto"
    threads: int | None = None
    run_id: str | None = None
    progress: bool = True
    dry_run: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.model in ("lstm", "rnn"), "--model must be lstm or rnn"),
            (self.vocab == "wordpiece", "--vocab must be wordpiece (MiniLM's pieces)"),
            (self.init_embeddings in ("none", "minilm"), "--init-embeddings must be none or minilm"),
            (self.max_texts is None or self.max_texts >= 2, "--max-texts must be at least 2"),
            (self.min_count >= 1, "--min-count must be at least 1"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.max_tokens >= 2, "--max-tokens must be at least 2 (a token and the one it predicts)"),
            (0 < self.validation_percent < 100, "--validation-percent must be in (0, 100)"),
            (self.device in ("auto", "cpu", "cuda"), "--device must be auto, cpu or cuda"),
            (self.threads is None or self.threads >= 1, "--threads must be at least 1"),
            (
                not (self.bidirectional and self.recurrent_layers > 1),
                "--recurrent-layers above 1 needs --no-bidirectional: in a stacked bidirectional "
                "layer each direction reads the other's outputs, so it would see the token it predicts",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for name in ("embedding_dim", "hidden_dim", "recurrent_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The classifier config whose ``embedding`` and ``recurrent`` modules are pre-trained."""
        return ModelConfig(
            kind="lstm" if self.model == "lstm" else "rnn",
            vocab_size=vocab_size,
            num_labels=1,
            embedding_dim=self.embedding_dim,
            hidden_dim=self.hidden_dim,
            recurrent_layers=self.recurrent_layers,
            linear_layers=1,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
            max_tokens=self.max_tokens,
        )

    def encoder_config(self, vocab_size: int) -> dict[str, Any]:
        """The published ``config.json``: what a classifier must match to start from the encoder."""
        return {
            "kind": self.model,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "recurrent_layers": self.recurrent_layers,
            "bidirectional": self.bidirectional,
            "max_tokens": self.max_tokens,
            "vocab_size": vocab_size,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass
class PretrainedEncoder:
    """A published encoder: the vocabulary it was trained on, its config and its tensors."""

    run_id: str
    vocab: Vocabulary
    config: dict[str, Any]
    state: dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- data


@dataclass
class Corpus:
    """The deduplicated texts, encoded, split by content hash into train and held-out validation."""

    train: EncodedSplit
    validation: EncodedSplit
    vocab: Vocabulary
    texts_read: int
    duplicates: int
    too_short: int
    sources: list[str]


def read_texts(store: ObjectStore, data: Sequence[str] | None, stats: codecs.ParseStats) -> Iterator[str]:
    """Tweet texts of the ``--data`` files, or of every batch under the store's ``raw/``.

    A ``.txt`` file is one tweet a line; any other file is read by the codecs (every record's
    text, labeled or not). FileNotFoundError for a pattern that matches nothing; ValueError
    for a file that cannot be read.
    """
    if not data:
        for record in store_records(store, stats):
            yield record.text
        return
    for path in codecs.iter_paths(data):
        try:
            if path.suffix == ".txt":
                with open(path, encoding="utf-8", errors="replace") as handle:
                    for line in handle:
                        if line.strip():
                            stats.lines += 1
                            stats.records += 1
                            yield line.strip()
            else:
                for record in codecs.iter_records(path, stats):
                    yield record.text
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc}") from None


def load_corpus(
    store: ObjectStore,
    data: Sequence[str] | None,
    max_texts: int | None = None,
    validation_percent: int = 5,
    min_count: int = 2,
    max_tokens: int = 64,
    seed: int = 13,
) -> Corpus:
    """Read, deduplicate by content, cap to ``max_texts`` (a seeded sample), split, build the
    wordpiece vocabulary from the train side and encode both sides.

    Texts of fewer than two word tokens are dropped: they hold nothing to predict. ValueError
    when too little is left to train and validate on.
    """
    stats = codecs.ParseStats()
    source = ", ".join(data) if data else f"{store.uri}/raw/"
    seen: set[str] = set()
    digests: list[str] = []
    token_lists: list[list[str]] = []
    read = duplicates = too_short = 0
    for text in read_texts(store, data, stats):
        read += 1
        digest = content_hash(text)
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        tokens = tokenize(normalize(text))
        if len(tokens) < 2:
            too_short += 1
            continue
        digests.append(digest)
        token_lists.append(tokens)
    if not token_lists:
        raise ValueError(f"no usable texts in {source} (read {read}; {stats.summary()})")
    if max_texts is not None and len(token_lists) > max_texts:
        keep = np.sort(np.random.default_rng(seed).choice(len(token_lists), max_texts, replace=False))
        digests = [digests[i] for i in keep]
        token_lists = [token_lists[i] for i in keep]
    sides: dict[str, list[list[str]]] = {"train": [], "validation": []}
    for digest, tokens in zip(digests, token_lists, strict=True):
        sides[split_of(digest, 0, validation_percent)].append(tokens)
    if not sides["train"] or not sides["validation"]:
        raise ValueError(
            f"{len(token_lists)} usable texts in {source}: too few for a train and a "
            f"{validation_percent}% validation side; give more data or a larger --validation-percent"
        )
    vocab = build_vocab(sides["train"], "wordpiece", min_count=min_count)
    train_split, validation_split = (
        encode_split(tokens, [()] * len(tokens), vocab, [], max_tokens) for tokens in sides.values()
    )
    return Corpus(
        train_split,
        validation_split,
        vocab,
        texts_read=read,
        duplicates=duplicates,
        too_short=too_short,
        sources=list(data) if data else [source],
    )


def frequency_ranks(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """``rank[id]``: 0 for the most frequent token id, ties broken by id (adaptive softmax
    classes must be ordered by frequency)."""
    counts = np.bincount(ids, minlength=vocab_size)
    order = np.argsort(-counts, kind="stable")
    ranks = np.empty(vocab_size, dtype=np.int64)
    ranks[order] = np.arange(vocab_size)
    return ranks


def softmax_cutoffs(vocab_size: int) -> list[int]:
    """:data:`SOFTMAX_CUTOFFS` that fall inside the vocabulary (one split for a tiny one)."""
    return [c for c in SOFTMAX_CUTOFFS if c < vocab_size - 1] or [max(1, vocab_size // 2)]


# ----------------------------------------------------------------------------- the model


class LanguageModel(nn.Module):
    """A classifier's ``embedding`` and ``recurrent`` modules under next/previous-token heads.

    The modules keep their names, so :meth:`encoder_state` is a slice of a classifier's state
    dict. Targets are frequency ranks (see :func:`frequency_ranks`), not vocabulary ids.
    """

    def __init__(self, classifier: RecurrentClassifier, cutoffs: Sequence[int]) -> None:
        super().__init__()
        c = classifier.config
        self.config = c
        self.embedding = classifier.embedding
        self.recurrent = classifier.recurrent
        self.dropout = nn.Dropout(c.dropout)
        self.next_token = nn.AdaptiveLogSoftmaxWithLoss(c.hidden_dim, c.vocab_size, list(cutoffs))
        self.previous_token = (
            nn.AdaptiveLogSoftmaxWithLoss(c.hidden_dim, c.vocab_size, list(cutoffs))
            if c.bidirectional
            else None
        )

    def forward(
        self, token_ids: torch.Tensor, lengths: torch.Tensor, ranks: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        """Summed NLL over every prediction of both directions, and how many predictions.

        ``token_ids`` and ``ranks`` (the targets) are ``[batch, time]``, right-padded;
        ``lengths`` holds the true lengths (>= 2).
        """
        width = token_ids.shape[1]
        embedded = self.dropout(self.embedding(token_ids))
        lengths_cpu = lengths.cpu()
        if self.config.bidirectional and bool((lengths_cpu != width).any()):
            # Packed, so the backward direction starts at each tweet's true last token.
            packed = pack_padded_sequence(embedded, lengths_cpu, batch_first=True, enforce_sorted=False)
            output, _ = pad_packed_sequence(self.recurrent(packed)[0], batch_first=True, total_length=width)
        else:
            output, _ = self.recurrent(embedded)  # forward-only: padding comes after every real step
        output = self.dropout(output)
        hidden = self.config.hidden_dim
        # Pair (t, t + 1) is a prediction when both are real tokens: forward reads t, predicts
        # t + 1; backward reads t + 1, predicts t.
        pairs = (torch.arange(width - 1, device=token_ids.device)[None, :] + 1) < lengths[:, None].to(
            token_ids.device
        )
        nll = -self.next_token(output[:, :-1, :hidden][pairs], ranks[:, 1:][pairs]).output.sum()
        if self.previous_token is not None:
            backward = output[:, 1:, hidden:][pairs]
            nll = nll - self.previous_token(backward, ranks[:, :-1][pairs]).output.sum()
        directions = 2 if self.previous_token is not None else 1
        return nll, int(pairs.sum()) * directions

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The ``embedding.*`` and ``recurrent.*`` tensors, detached copies on the CPU."""
        return {
            k: v.detach().to("cpu").clone()
            for k, v in self.state_dict().items()
            if k.split(".", 1)[0] in ENCODER_MODULES
        }


def lm_train_step(
    model: LanguageModel,
    batch: tuple[torch.Tensor, torch.Tensor],
    rank_of: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    clip_norm: float = CLIP_NORM,
) -> float:
    """One optimizer step on one batch of ``(ids, lengths)``; returns its mean NLL per prediction."""
    ids, lengths = batch
    ids = ids.to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device):
        nll, count = model(ids, lengths, rank_of[ids])
    return optimizer_step(model, nll.float() / count, optimizer, clip_norm)


@torch.inference_mode()
def lm_eval(
    model: LanguageModel,
    split: EncodedSplit,
    rank_of: torch.Tensor,
    device: torch.device,
    max_batches: int | None = None,
) -> tuple[float, int]:
    """Mean NLL per prediction over a split (``exp`` of it is the perplexity), and the count."""
    model.eval()
    total, count = 0.0, 0
    for i, rows in enumerate(eval_batches(split.lengths, EVAL_BATCH_SIZE)):
        if max_batches is not None and i >= max_batches:
            break
        ids, lengths, _ = split.batch(rows)
        ids = ids.to(device)
        with autocast(device):
            nll, n = model(ids, lengths, rank_of[ids])
        total += float(nll.float())
        count += n
    return total / max(count, 1), count


# ----------------------------------------------------------------------------- the job


def pretrain(options: PretrainOptions, store: ObjectStore | None = None) -> PretrainResult:
    """Pre-train, keep the epoch of lowest validation perplexity, publish it (see module doc).

    Raises ValueError for unusable data or options, FileNotFoundError for ``--data`` that
    matches no file.
    """
    started = time.perf_counter()
    store = store or open_store(options.store)
    say: Callable[[str], None] = (
        (lambda m: print(m, file=sys.stderr, flush=True)) if options.progress else log.info
    )
    run_id = options.run_id or new_run_id("lm")
    if options.run_id and not options.dry_run and store.exists(f"{PRETRAINED_PREFIX}/{run_id}/{MANIFEST}"):
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
        from tweetdomains.minilm import PretrainedError, init_embeddings_from_minilm

        try:
            copied = init_embeddings_from_minilm(classifier, vocab)
        except PretrainedError as exc:
            raise ValueError(f"--init-embeddings minilm: {exc}") from None
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
        history.append(_run_epoch(model, corpus, rank_of, optimizer, device, options, epoch))
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
    bar = tqdm(
        batches,
        desc=f"epoch {epoch + 1}/{options.epochs}",
        disable=not options.progress,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for i, rows in enumerate(bar):
        ids, lengths, _ = corpus.train.batch(rows)
        losses.append(lm_train_step(model, (ids, lengths), rank_of, optimizer, device))
        tokens += int(lengths.sum())
        if i % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
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


def publish_encoder(
    store: ObjectStore,
    run_id: str,
    state: dict[str, torch.Tensor],
    vocab: Vocabulary,
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Write ``pretrained/<run_id>/``: the files, the manifest (registry scheme), then
    ``pretrained/latest.json``. Returns the manifest."""
    artifacts = {
        ENCODER: save_safetensors({k: v.detach().to("cpu").contiguous() for k, v in state.items()}),
        "vocab.json": vocab.to_json().encode(),
        "config.json": json.dumps(config, indent=2).encode(),
        "metrics.json": json.dumps(metrics, indent=2).encode(),
    }
    manifest = Registry(store, prefix=PRETRAINED_PREFIX).publish(run_id, artifacts)
    store.put(LATEST_KEY, json.dumps({"run_id": run_id}).encode())
    return manifest


# ----------------------------------------------------------------------------- loading


def resolve_pretrained(store: ObjectStore, ref: str) -> str:
    """The run id ``ref`` names: an id, or ``latest`` (the last published encoder)."""
    if ref != "latest":
        return ref
    try:
        latest = json.loads(store.get(LATEST_KEY))
    except ObjectNotFound:
        raise ValueError(
            f"no pretrained encoder under {store.uri}/{PRETRAINED_PREFIX}/: run `tweetdomains pretrain` first"
        ) from None
    except ValueError:
        latest = None
    if not isinstance(latest, dict) or not isinstance(latest.get("run_id"), str):
        raise ValueError(f"{LATEST_KEY} is malformed")
    return str(latest["run_id"])


def load_pretrained(store: ObjectStore | str, ref: str = "latest") -> PretrainedEncoder:
    """A published encoder by run id or ``latest``, every file checked against its manifest.

    ValueError for a missing run, an incomplete one (no manifest), a file whose bytes do not
    match the manifest, or files that do not agree with each other.
    """
    if isinstance(store, str):
        store = open_store(store)
    run_id = resolve_pretrained(store, ref)
    registry = Registry(store, prefix=PRETRAINED_PREFIX)
    try:
        manifest = registry.manifest(run_id)
        files = {name: registry.artifact(run_id, name, manifest) for name in manifest["files"]}
    except RegistryError as exc:
        raise ValueError(f"pretrained encoder: {exc}") from None
    missing = sorted({ENCODER, "vocab.json", "config.json"} - set(files))
    if missing:
        raise ValueError(f"pretrained encoder {run_id!r} lacks {', '.join(missing)}")
    try:
        config = json.loads(files["config.json"])
        vocab = Vocabulary.from_json(files["vocab.json"])
        state = load_safetensors(files[ENCODER])
    except (ValueError, SafetensorError) as exc:
        raise ValueError(f"pretrained encoder {run_id!r} is unreadable: {exc}") from None
    absent = [name for name in (*MATCHING_FIELDS, "max_tokens") if name not in config]
    if absent:
        raise ValueError(f"config.json of pretrained encoder {run_id!r} lacks {', '.join(absent)}")
    foreign = sorted(k for k in state if k.split(".", 1)[0] not in ENCODER_MODULES)
    if foreign or "embedding.weight" not in state:
        raise ValueError(f"pretrained encoder {run_id!r} holds unexpected tensors {foreign[:3]}")
    rows, width = state["embedding.weight"].shape
    if not rows == len(vocab) == config["vocab_size"] or width != config["embedding_dim"]:
        raise ValueError(
            f"pretrained encoder {run_id!r}: embedding {rows}x{width}, vocabulary {len(vocab)}, "
            f"config {config['vocab_size']}x{config['embedding_dim']} do not agree"
        )
    return PretrainedEncoder(run_id, vocab, config, state)


def apply_pretrained(model: RecurrentClassifier, encoder: PretrainedEncoder) -> int:
    """Copy the encoder's ``embedding.*`` and ``recurrent.*`` tensors into a classifier.

    The classifier must have been built for the encoder's vocabulary and shape: ValueError
    naming the first field that differs otherwise. Returns the number of tensors copied.
    """
    ours = asdict(model.config)
    for name in MATCHING_FIELDS:
        if ours[name] != encoder.config[name]:
            hint = " (train with the encoder's vocabulary)" if name == "vocab_size" else ""
            raise ValueError(
                f"pretrained encoder {encoder.run_id!r} does not fit the classifier: {name} is "
                f"{encoder.config[name]!r} in the encoder, {ours[name]!r} in the classifier{hint}"
            )
    target = model.state_dict()
    expected = {k for k in target if k.split(".", 1)[0] in ENCODER_MODULES}
    if set(encoder.state) != expected:
        differing = sorted(set(encoder.state) ^ expected)
        raise ValueError(
            f"pretrained encoder {encoder.run_id!r}: tensors differ from the classifier's: {differing[:4]}"
        )
    for name, tensor in encoder.state.items():
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise ValueError(
                f"pretrained encoder {encoder.run_id!r}: {name} is {tuple(tensor.shape)}, "
                f"the classifier's {tuple(target[name].shape)}"
            )
    with torch.no_grad():
        for name, tensor in encoder.state.items():
            target[name].copy_(tensor)
    return len(encoder.state)
