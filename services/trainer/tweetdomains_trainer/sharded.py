"""Store data in the training job: a sharded corpus, epochs streamed per rank, mid-epoch checkpoints.

The store's raw batches become a :class:`~tweetdomains_trainer.corpus.ShardedCorpus` (rank 0
prepares it, the other ranks then find it); each rank streams its epochs from its own shards;
checkpoints taken mid-epoch (``--checkpoint-steps``, ``--stop-after-steps``) are continued
by ``--resume``.

A stream's order is a pure function of (seed, epoch, rank, world size, shards)
(:mod:`.stream`), so a mid-epoch checkpoint holds only its position (``TrainState.step``)
and the epoch's losses so far; resuming replays the row numbers up to that step without
reading a token.
"""

from __future__ import annotations

import logging
from itertools import islice

import numpy as np
import torch

from tweetdomains.store import ObjectNotFound, ObjectStore
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer.checkpoint import TrainState, save_checkpoint
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.data import EncodedSplit
from tweetdomains_trainer.distributed import Distributed
from tweetdomains_trainer.lineage import corpus_lineage
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.phase import TrainingPhase
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.stream import (
    ShardedSplit,
    StreamPosition,
    assign_parts,
    steps_per_epoch,
    stream_batches,
)

log = logging.getLogger(__name__)


def is_sharded(options: TrainOptions) -> bool:
    """Whether the options' data is the store's raw batches, read through shards."""
    return options.data is None and options.label_field == "domains"


def prepare_corpus(
    options: TrainOptions,
    store: ObjectStore,
    progress: Progress,
    vocab: Vocabulary | None = None,
    dist: Distributed | None = None,
) -> ShardedCorpus:
    """The store's raw batches as shards (rank 0 first under torchrun), with its lineage.

    The vocabulary is the one the store keeps for these options unless ``--refresh-vocab``
    (see :mod:`.corpus`): a retrain then encodes only its new batches.
    """

    def build() -> ShardedCorpus:
        return ShardedCorpus.prepare(
            store,
            vocab=vocab,
            vocab_kind=options.vocab,
            min_count=options.min_count,
            max_vocab=options.max_vocab,
            max_tokens=options.max_tokens,
            test_percent=options.test_percent,
            validation_percent=options.validation_percent,
            say=progress.say,
            keep_vocab=not options.refresh_vocab,
            dry_run=options.dry_run,
        )

    corpus = (dist or Distributed()).first_on_main(build)
    progress.say(f"dataset: {corpus.summary()}")
    if corpus.counts.stats.records and corpus.counts.stats.bad_lines:
        progress.say(f"parse: {corpus.counts.stats.summary()}")
    corpus.lineage = corpus_lineage(store.uri, corpus)
    return corpus


def load_corpus(
    store: ObjectStore, progress: Progress, resumed: TrainState, dist: Distributed, changed: str
) -> ShardedCorpus:
    """The corpus a checkpoint names (rank 0 first); ValueError ``changed`` when it no longer
    reads the same."""
    try:
        corpus = dist.first_on_main(lambda: ShardedCorpus.load(store, resumed.cache_key, say=progress.say))
    except ObjectNotFound:
        raise ValueError(f"{changed} ({resumed.cache_key} is gone)") from None
    except ValueError as exc:
        raise ValueError(f"{changed}: {exc}") from None
    corpus.lineage = resumed.lineage or corpus_lineage(store.uri, corpus)
    return corpus


def epoch_stream(
    options: TrainOptions, split: EncodedSplit, epoch: int, dist: Distributed, step: int = 0
) -> list[np.ndarray] | None:
    """This rank's batches of a sharded split for ``epoch`` from ``step`` on (None: not sharded)."""
    if not isinstance(split, ShardedSplit):
        return None
    position = StreamPosition(epoch, step)
    size = 1 if options.dry_run else None
    stream = stream_batches(split, options.batch_size, options.seed, position, dist.rank, dist.world_size)
    return list(islice(stream, size))


def stream_epoch(
    phase: TrainingPhase,
    options: TrainOptions,
    split: ShardedSplit,
    epoch: int,
    dist: Distributed,
    device: torch.device,
    progress: Progress,
    desc: str,
    state: TrainState,
    store: ObjectStore,
    steps_left: int | None,
) -> tuple[list[float], int, bool]:
    """This rank's part of a sharded epoch from ``state.step`` on, checkpointed every
    ``--checkpoint-steps`` and where ``steps_left`` runs out: the epoch's losses, the steps
    trained now, and whether the epoch is done."""
    total = steps_per_epoch(split, options.batch_size, options.seed, epoch, dist.world_size)
    owned = [split.parts[i].key for i in assign_parts(split, options.seed, epoch, dist.world_size)[dist.rank]]
    log.info(
        "rank %d of %d, epoch %d: %d of %d shards, %d steps from step %d",
        dist.rank, dist.world_size, epoch + 1, len(owned), len(split.parts), total, state.step,
    )  # fmt: skip
    log.debug("rank %d, epoch %d shards: %s", dist.rank, epoch + 1, " ".join(owned))
    position = StreamPosition(epoch, state.step)
    stream = stream_batches(split, options.batch_size, options.seed, position, dist.rank, dist.world_size)
    losses = list(state.epoch_losses) if state.step else []
    every = options.checkpoint_steps or total
    trained = 0
    while state.step < total:
        size = 1 if options.dry_run else min(every - state.step % every, total - state.step)
        if steps_left is not None:
            size = min(size, steps_left - trained)
        segment = list(islice(stream, size))
        losses += phase.run_epoch(options, split, epoch, dist, device, progress, desc, segment)
        if options.dry_run:
            return losses, len(segment), True
        trained += len(segment)
        state.step += len(segment)
        stopping = steps_left is not None and trained >= steps_left
        if state.step < total and (stopping or state.step % every == 0):
            state.epoch_losses = list(losses)
            if dist.is_main:
                save_state(store, state, phase)
        if stopping:
            break
    return losses, trained, state.step >= total


def save_state(store: ObjectStore, state: TrainState, phase: TrainingPhase) -> None:
    state.model = phase.base_model.state_dict()
    state.average = phase.average.state if phase.average is not None else None
    state.optimizer = phase.optimizer.state_dict()
    state.scheduler = phase.scheduler.state_dict()
    save_checkpoint(store, state)
