"""Streaming training batches from shards: rank-disjoint, bounded shuffle, resumable.

For epoch ``e`` with seed ``s`` every rank computes the same shard order (a permutation
drawn from ``(s, e)``) and the same assignment of shards to ranks (each next shard to the
rank with the fewest rows so far), so ranks read disjoint shards without talking. Each
rank streams its shards' rows through a buffer of at most ``buffer_rows`` row numbers
(plus one shard being added), draws ``batch_size * chunk_batches`` of them at random, sorts
that chunk by length (``train_batches``' bucketing) and yields its full batches in random
order. Every rank yields the same number of batches: the fewest full batches any rank's
shards hold, so DDP's collectives line up.

A batch is a row array for ``split.batch(rows)``, as with ``train_batches``. The order is a
pure function of (seed, epoch, rank, world size, shards), so :class:`StreamPosition`
``(epoch, step)`` is all a checkpoint needs: resuming replays the row numbers up to ``step``
without reading a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tweetdomains_trainer.corpus import ShardedSplit
from tweetdomains_trainer.data import CHUNK_BATCHES

BUFFER_CHUNKS = 4


@dataclass(frozen=True)
class StreamPosition:
    """Where a rank is in its stream: the epoch and the batches already trained."""

    epoch: int = 0
    step: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> StreamPosition:
        return cls(int(obj["epoch"]), int(obj["step"]))


def assign_parts(split: ShardedSplit, seed: int, epoch: int, world_size: int) -> list[list[int]]:
    """Each rank's part indices, in reading order, for this epoch (the same on every rank)."""
    order = np.random.default_rng([seed, epoch, 0]).permutation(len(split.parts))
    rows = np.zeros(world_size, dtype=np.int64)
    owned: list[list[int]] = [[] for _ in range(world_size)]
    for index in order:
        size = len(split.parts[index].rows)
        if not size:
            continue
        rank = int(np.argmin(rows))  # ties go to the lowest rank
        owned[rank].append(int(index))
        rows[rank] += size
    return owned


def steps_per_epoch(split: ShardedSplit, batch_size: int, seed: int, epoch: int, world_size: int) -> int:
    """The batches every rank trains this epoch; ValueError when some rank would get none."""
    owned = assign_parts(split, seed, epoch, world_size)
    steps = min(sum(len(split.parts[i].rows) for i in parts) // batch_size for parts in owned)
    if steps < 1:
        raise ValueError(
            f"{len(split.parts)} shards of {len(split)} train rows cannot give each of {world_size} "
            f"ranks a batch of {batch_size}: use fewer ranks, a smaller batch or more batches under raw/"
        )
    return steps


def stream_batches(
    split: ShardedSplit,
    batch_size: int,
    seed: int,
    position: StreamPosition | None = None,
    rank: int = 0,
    world_size: int = 1,
    buffer_rows: int | None = None,
    chunk_batches: int = CHUNK_BATCHES,
) -> Iterator[np.ndarray]:
    """This rank's batches (row arrays) for ``position.epoch``, from ``position.step`` on."""
    position = position or StreamPosition()
    epoch = position.epoch
    chunk = batch_size * chunk_batches
    buffer_rows = buffer_rows or BUFFER_CHUNKS * chunk
    total = steps_per_epoch(split, batch_size, seed, epoch, world_size)
    owned = assign_parts(split, seed, epoch, world_size)[rank]
    rng = np.random.default_rng([seed, epoch, 1, rank])
    lengths = split.lengths
    buffer = np.zeros(0, dtype=np.int64)
    queue = iter(owned)
    exhausted = False
    step = 0
    while step < total:
        while not exhausted and len(buffer) < buffer_rows:
            index = next(queue, None)
            if index is None:
                exhausted = True
                break
            part_rows = split.bases[index] + np.arange(len(split.parts[index].rows))
            buffer = np.concatenate([buffer, part_rows[rng.permutation(len(part_rows))]])
        if len(buffer) < batch_size:
            break  # cannot happen: steps_per_epoch counted this rank's full batches
        take = rng.choice(len(buffer), size=min(chunk, len(buffer)), replace=False)
        drawn = buffer[take]
        keep = np.ones(len(buffer), dtype=bool)
        keep[take] = False
        buffer = buffer[keep]
        drawn = drawn[np.argsort(lengths[drawn], kind="stable")]
        full = len(drawn) // batch_size
        if full < len(drawn) / batch_size:  # a partial batch goes back for a later chunk
            buffer = np.concatenate([buffer, drawn[full * batch_size :]])
        batches = [drawn[i * batch_size : (i + 1) * batch_size] for i in range(full)]
        for order in rng.permutation(len(batches)):
            if step >= total:
                return
            if step >= position.step:
                yield batches[order]
            step += 1
