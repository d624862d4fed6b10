"""The training job: data -> epochs of ``train_step`` -> thresholds on validation -> publish.

One entry point for a laptop CPU, one GPU and many: under ``torchrun`` (``WORLD_SIZE`` set)
each process joins a process group (gloo on CPU, NCCL on CUDA), trains on its share of every
epoch's batches through DistributedDataParallel, and only rank 0 writes checkpoints and
publishes. Every random draw is seeded from ``--seed``; batch order is a function of
(seed, epoch), and the torch/numpy/Python generator states go into each epoch's checkpoint
(one :class:`~tweetdomains_trainer.checkpoint.TrainState`), so ``--resume`` continues a
killed job to the very weights an uninterrupted one reaches.

Store data (no ``--data``) goes through :class:`~tweetdomains_trainer.corpus.ShardedCorpus`:
each raw batch is tokenized and encoded once into memory-mapped shards (rank 0 prepares
them, the other ranks wait, then find them), and every rank streams its own disjoint shards
through :func:`~tweetdomains_trainer.stream.stream_batches`. That stream is a function of
(seed, epoch, rank), so a checkpoint taken mid-epoch (``--checkpoint-steps``,
``--stop-after-steps``) records only its position, and ``--resume`` continues from it.
``--teacher`` distils on either path (records: :mod:`.distill`; shards: :mod:`.corpus_distill`).

The parts live beside this module: options (:mod:`.options`), steps and device
(:mod:`.steps`), one phase's model and optimizer (:mod:`.phase`), ``torchrun``
(:mod:`.distributed`), checkpoints (:mod:`.checkpoint`), scoring and publishing
(:mod:`.publish`), what is printed (:mod:`.progress`).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import replace
from typing import Any, cast

import numpy as np
import torch

from tweetdomains.metrics import score
from tweetdomains.registry import Registry, new_run_id
from tweetdomains.store import ObjectNotFound, ObjectStore, open_store
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer.checkpoint import (
    TrainState,
    checkpoint_key,
    load_checkpoint,
    set_rng_state,
)
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.corpus_distill import corpus_problem, prepare_corpus_distillation
from tweetdomains_trainer.data import EncodedDataset, concat_splits, encode_dataset, read_dataset
from tweetdomains_trainer.distill import (
    Distillation,
    auto_teacher,
    prepare_distillation,
    read_unlabeled,
    records_problem,
)
from tweetdomains_trainer.distributed import Distributed
from tweetdomains_trainer.encoder import MATCHING_FIELDS, PretrainedEncoder, load_pretrained
from tweetdomains_trainer.lineage import data_lineage
from tweetdomains_trainer.options import RUNTIME_OPTIONS, TrainOptions
from tweetdomains_trainer.phase import TrainingPhase
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.publish import RunContext, TrainResult, finish
from tweetdomains_trainer.scoring import scored_dataset
from tweetdomains_trainer.sharded import (
    epoch_stream,
    is_sharded,
    load_corpus,
    prepare_corpus,
    save_state,
    stream_epoch,
)
from tweetdomains_trainer.shards import SHARDS_PREFIX
from tweetdomains_trainer.steps import predict_split, resolve_device, seed_everything
from tweetdomains_trainer.stream import ShardedSplit


def train(
    options: TrainOptions,
    store: ObjectStore | None = None,
    encoded: EncodedDataset | None = None,
) -> TrainResult:
    """Train, tune thresholds on validation, score test, publish and promote (see module doc).

    ``encoded`` lets a sweep encode its data once for every row. Raises ValueError for
    unusable data or options.
    """
    dist = Distributed.from_env()
    store = store or open_store(options.store)
    progress = Progress(options.progress and dist.is_main)
    say = progress.say
    resumed: TrainState | None = None
    if options.resume:
        assert options.run_id
        resumed = load_checkpoint(store, options.run_id)
        options = _resumed_options(options, resumed)
    elif options.run_id and not options.dry_run:
        if Registry(store).is_published(options.run_id):
            raise ValueError(f"run {options.run_id!r} is already published: choose another --run-id")
        if store.exists(checkpoint_key(options.run_id)):
            raise ValueError(f"run {options.run_id!r} has a checkpoint: continue it with --resume")
    if options.threads:
        torch.set_num_threads(options.threads)
    run_id = options.run_id or new_run_id(options.model)
    if dist.world_size > 1 and options.freeze_epochs:
        raise ValueError("--freeze-epochs is not supported under torchrun (DDP fixes the trained parameters)")
    if (options.checkpoint_steps or options.stop_after_steps) and not is_sharded(options):
        raise ValueError("--checkpoint-steps and --stop-after-steps need the store's data (no --data)")
    device = resolve_device(options.device, dist.local_rank)
    dist.start(device)
    seed_everything(options.seed)
    if resumed is not None:
        encoded = _resumed_data(options, store, progress, resumed, dist)
    encoder = _pretrained_encoder(options, store) if resumed is None and options.init_from else None
    if encoded is None:
        encoded = prepare_data(options, store, progress, encoder.vocab if encoder else None, dist)
    elif encoder is not None and encoded.vocab != encoder.vocab:
        raise ValueError(f"--init-from {options.init_from}: the data was encoded with another vocabulary")
    options, distill = _distillation(options, store, encoded, progress, dist)
    if distill is not None:
        encoded = replace(encoded, lineage={**(encoded.lineage or {}), "distillation": distill.summary})
    scored = scored_dataset(encoded, options.max_eval_rows)
    if scored is not encoded:
        say(
            f"scoring: {len(scored.validation):,} of {len(encoded.validation):,} validation and "
            f"{len(scored.test):,} of {len(encoded.test):,} test tweets, the same fixed sample every "
            "epoch and run (--max-eval-rows)"
        )
    train_split, val_split = (distill.train if distill else encoded.train), scored.validation

    phase = TrainingPhase.start(
        options, encoded, train_split, encoder, resumed is None, dist, device, progress
    )
    base_model, loss_fn, average = phase.base_model, phase.loss_fn, phase.average
    state = TrainState(run_id, options.to_dict(), encoded.cache_key, lineage=encoded.lineage)
    state.best = {k: v.detach().clone() for k, v in base_model.state_dict().items()}
    if resumed is not None:
        state = _restore(phase, resumed, state, device)
        at = f", step {state.step} of epoch {state.epoch + 1}" if state.step else ""
        say(f"resuming run {run_id} after epoch {state.epoch}{at}")

    say(
        f"run {run_id}: {options.model} on {device} (world {dist.world_size}), "
        f"{sum(p.numel() for p in base_model.parameters()):,} parameters, vocabulary {len(encoded.vocab):,}, "
        f"{len(encoded.labels)} labels"
    )
    completed = True
    steps_left = options.stop_after_steps
    for epoch in range(state.epoch, options.epochs):
        if state.bad_epochs >= options.patience:
            break
        if steps_left == 0:
            completed = False
            break
        started = time.perf_counter()
        desc = f"epoch {epoch + 1}/{options.epochs}"
        if isinstance(train_split, ShardedSplit):
            losses, trained, finished = stream_epoch(
                phase, options, train_split, epoch, dist, device, progress, desc, state, store, steps_left
            )
            steps_left = None if steps_left is None else steps_left - trained
            if not finished:  # --stop-after-steps ran out mid-epoch; the checkpoint holds the position
                completed = False
                break
            state.step, state.epoch_losses = 0, []
        else:
            losses = phase.run_epoch(options, train_split, epoch, dist, device, progress, desc)
        with average.swapped_in(base_model) if average is not None else nullcontext():
            val_loss, val_probs, val_targets = predict_split(
                base_model,
                val_split,
                loss_fn,
                device,
                max_batches=1 if options.dry_run else None,
                precision=options.precision,
            )
        val = score(val_targets, val_probs, encoded.labels, 0.5)
        metric = dist.agree(val["micro_f1"], device)
        if options.schedule == "plateau":
            phase.scheduler.step(metric)
        if metric > state.best_metric:
            state.best_metric, state.best_epoch, state.bad_epochs = metric, epoch + 1, 0
            state.best = {k: v.detach().clone() for k, v in phase.kept_weights().items()}
        else:
            state.bad_epochs += 1
        seconds = time.perf_counter() - started
        state.train_seconds += seconds
        state.epoch = epoch + 1
        state.history.append(_history_row(epoch, losses, val_loss, val, phase, seconds))
        say(_epoch_line(state.history[-1], options, len(losses)))
        if options.dry_run:
            break
        if dist.is_main:
            save_state(store, state, phase)
        if options.stop_after_epochs is not None and epoch + 1 >= options.stop_after_epochs:
            completed = epoch + 1 >= options.epochs
            break

    history = state.history
    if not completed:
        where = f"step {state.step} of epoch {state.epoch + 1}" if state.step else f"epoch {state.epoch}"
        say(f"stopped after {where}; continue with --resume --run-id {run_id}")
        return TrainResult(
            run_id, {"history": history}, base_model, encoded, np.zeros(0), history=history, completed=False
        )
    base_model.load_state_dict(state.best)
    run = RunContext(options, store, dist, device, run_id, encoded, progress, scored)
    if not options.refit or options.dry_run:
        return finish(run, base_model, loss_fn, history, state.train_seconds, state.best_epoch)
    # Refit: the held-out figures and thresholds come from the model chosen on validation;
    # the published one is trained again, same seed and epoch count, on train + validation.
    _, val_probs, val_targets = predict_split(
        base_model, val_split, loss_fn, device, precision=options.precision
    )
    started = time.perf_counter()
    # Every validation row, not only the scored ones; a refit distils too.
    both = concat_splits(train_split, distill.validation if distill else encoded.validation)
    say(f"refit: training again on train + validation ({len(both):,} tweets) for {state.best_epoch} epochs")
    seed_everything(options.seed)
    refit = TrainingPhase.start(options, encoded, both, encoder, True, dist, device, progress)
    for epoch in range(state.best_epoch):
        epoch_started = time.perf_counter()
        desc = f"refit epoch {epoch + 1}/{state.best_epoch}"
        losses = refit.run_epoch(
            options, both, epoch, dist, device, progress, desc, epoch_stream(options, both, epoch, dist)
        )
        say(f"{desc}: train loss {np.mean(losses):.4f} ({time.perf_counter() - epoch_started:.1f} s)")
    refit.adopt_average()
    seconds = time.perf_counter() - started
    say(f"refit on train + validation ({len(both)} tweets, {state.best_epoch} epochs, {seconds:.1f} s)")
    return finish(
        run,
        refit.base_model,
        loss_fn,
        history,
        state.train_seconds + seconds,
        state.best_epoch,
        held_out=(val_targets, val_probs),
    )


def prepare_data(
    options: TrainOptions,
    store: ObjectStore,
    progress: Progress,
    vocab: Vocabulary | None = None,
    dist: Distributed | None = None,
) -> EncodedDataset:
    """Read, split and encode the options' data (cached in the store), with its lineage:
    the store's raw batches as a :class:`ShardedCorpus`, ``--data`` files as records."""
    if is_sharded(options):
        return cast(EncodedDataset, prepare_corpus(options, store, progress, vocab, dist))
    return prepare_records(options, store, progress, vocab)


def prepare_records(
    options: TrainOptions, store: ObjectStore, progress: Progress, vocab: Vocabulary | None = None
) -> EncodedDataset:
    """``--data`` files (or a checkpoint's store data from before shards) read as records."""
    dataset, source = read_dataset(
        store, options.data, options.test_percent, options.validation_percent, options.label_field
    )
    progress.say(f"dataset: {dataset.summary()}")
    if dataset.stats.records and dataset.stats.bad_lines:
        progress.say(f"parse: {dataset.stats.summary()}")
    # The unlabeled tweets count towards the vocabulary: words the labeled tweets lack get an
    # id (and, for wordpieces, MiniLM's embedding) that the teacher's labels then train.
    unlabeled = (
        read_unlabeled(store, options.unlabeled, dataset) if options.unlabeled and vocab is None else None
    )
    encoded = encode_dataset(
        dataset,
        store,
        min_count=options.min_count,
        max_vocab=options.max_vocab,
        max_tokens=options.max_tokens,
        use_cache=not options.dry_run,
        vocab_kind=options.vocab,
        vocab=vocab,
        unlabeled_tokens=unlabeled.tokens if unlabeled else (),
    )
    encoded.lineage = data_lineage(source, dataset, encoded)
    encoded.validation_texts = [r.text for r in dataset.validation]
    encoded.dataset = dataset
    encoded.unlabeled = unlabeled
    return encoded


def _resumed_data(
    options: TrainOptions, store: ObjectStore, progress: Progress, resumed: TrainState, dist: Distributed
) -> EncodedDataset:
    """The data the checkpoint names; ValueError when it no longer reads the same."""
    changed = f"the data of run {options.run_id!r} changed since its checkpoint; cannot resume exactly"
    if resumed.cache_key.startswith(SHARDS_PREFIX):
        return cast(EncodedDataset, load_corpus(store, progress, resumed, dist, changed))
    # The entry the checkpoint names is its data by definition (even under an older key
    # format); only a re-encoded dataset has to prove it is the same.
    encoded = _cached_dataset(store, resumed.cache_key)
    if encoded is None:
        encoded = prepare_records(options, store, progress)
        if encoded.cache_key != resumed.cache_key:
            raise ValueError(changed)
    encoded.lineage = encoded.lineage or resumed.lineage
    return encoded


def _distillation(
    options: TrainOptions, store: ObjectStore, encoded: EncodedDataset, progress: Progress, dist: Distributed
) -> tuple[TrainOptions, Distillation | None]:
    """``--teacher``: ``auto`` resolved to a teacher or none (said in one line), then the
    distillation splits, scored once on rank 0 (the other ranks read the cached soft labels);
    a sharded corpus through :mod:`.corpus_distill`, records through :mod:`.distill`."""
    data = cast(Any, encoded)
    corpus: ShardedCorpus | None = data if isinstance(data, ShardedCorpus) else None
    if options.teacher == "auto":
        fits = corpus_problem(store, options, corpus) if corpus else records_problem(store, options, encoded)
        teacher, line = auto_teacher(store, fits)
        progress.say(line)
        options = replace(options, teacher=teacher)
    if not options.teacher:
        return options, None
    chosen = options

    def prepare() -> Distillation:
        if corpus is not None:
            return prepare_corpus_distillation(chosen, store, corpus, progress)
        return prepare_distillation(chosen, store, encoded, progress)

    return options, dist.first_on_main(prepare)


def _resumed_options(options: TrainOptions, resumed: TrainState) -> TrainOptions:
    """The checkpoint's options, with the runtime ones of this command line."""
    saved = TrainOptions.from_dict(resumed.options)
    for name in RUNTIME_OPTIONS:
        setattr(saved, name, getattr(options, name))
    saved.run_id, saved.resume = options.run_id, True
    return saved


def _restore(
    phase: TrainingPhase, resumed: TrainState, state: TrainState, device: torch.device
) -> TrainState:
    """Load a checkpoint into the phase; the state to continue from."""
    phase.base_model.load_state_dict(resumed.model)
    if phase.average is not None and resumed.average is not None:
        phase.average.load(resumed.average, device)
    phase.optimizer.load_state_dict(resumed.optimizer)
    phase.scheduler.load_state_dict(resumed.scheduler)
    assert resumed.rng is not None
    set_rng_state(*resumed.rng)
    resumed.best = {k: v.to(device) for k, v in resumed.best.items()}
    resumed.options, resumed.lineage = state.options, state.lineage or resumed.lineage
    return resumed


def _history_row(
    epoch: int,
    losses: list[float],
    val_loss: float,
    val: dict[str, Any],
    phase: TrainingPhase,
    seconds: float,
) -> dict[str, Any]:
    return {
        "epoch": epoch + 1,
        "train_loss": round(float(np.mean(losses)) if losses else 0.0, 5),
        "val_loss": round(val_loss, 5),
        "val_micro_f1": val["micro_f1"],
        "val_macro_f1": val["macro_f1"],
        "val_p_at_1": val["p_at_1"],
        "lr": phase.optimizer.param_groups[0]["lr"],
        "seconds": round(seconds, 2),
    }


def _epoch_line(h: dict[str, Any], options: TrainOptions, batches: int) -> str:
    rate = batches * options.batch_size / max(h["seconds"], 0.01)
    return (
        f"epoch {h['epoch']}/{options.epochs}: train loss {h['train_loss']:.4f}, "
        f"val loss {h['val_loss']:.4f}, "
        f"val micro-F1 {h['val_micro_f1']:.4f} macro-F1 {h['val_macro_f1']:.4f} P@1 {h['val_p_at_1']:.4f} "
        f"({h['seconds']:.1f} s, {rate:,.0f} tweets/s)"
    )


def _pretrained_encoder(options: TrainOptions, store: ObjectStore) -> PretrainedEncoder:
    encoder = load_pretrained(store, options.init_from or "latest")
    # Checked before the data is encoded, so a mismatch costs no encoding pass; the options
    # call the config's "kind" "model", and the vocabulary is the encoder's own.
    option_name = {"kind": "model"}
    shape = {f: getattr(options, option_name.get(f, f)) for f in MATCHING_FIELDS if f != "vocab_size"}
    differing = [f"{k} {encoder.config[k]!r} (not {v!r})" for k, v in shape.items() if encoder.config[k] != v]
    if differing:
        raise ValueError(
            f"--init-from {options.init_from}: the encoder has {', '.join(differing)}; "
            "train with the encoder's shape"
        )
    return encoder


def _cached_dataset(store: ObjectStore, key: str) -> EncodedDataset | None:
    try:
        return EncodedDataset.from_bytes(store.get(key))
    except ObjectNotFound:
        return None
