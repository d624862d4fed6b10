"""Training batches from shards: a split over memory-mapped shards, and rank-disjoint, shuffled,
resumable streams of its batches.

:class:`ShardedSplit` has ``EncodedSplit``'s interface (``len``, ``lengths``, ``labels``,
``batch(rows)``) so ``train_batches`` and ``eval_batches`` drive it unchanged.

For epoch ``e`` with seed ``s`` every rank computes the same shard order (a permutation
drawn from ``(s, e)``) and the same assignment of shards to ranks (each next shard to the
rank with the fewest rows so far), so ranks read disjoint shards without talking. Each
rank streams its shards' rows through a buffer of at most ``buffer_rows`` row numbers
(plus one shard being added), draws ``batch_size * chunk_batches`` of them at random, sorts
that chunk by length (``train_batches``' bucketing) and yields its full batches in random
order. Every rank yields the same number of batches: the fewest full batches any rank's
shards hold, so DDP's collectives line up. A single process also trains the rows left over
after its last full batch, as one short last batch (as ``train_batches`` does).

A batch is a row array for ``split.batch(rows)``, as with ``train_batches``. The order is a
pure function of (seed, epoch, rank, world size, shards), so :class:`StreamPosition`
``(epoch, step)`` is all a checkpoint needs: resuming replays the row numbers up to ``step``
without reading a token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from tweetdomains import codecs
from tweetdomains.store import ObjectStore
from tweetdomains_trainer.data import CHUNK_BATCHES
from tweetdomains_trainer.shards import ShardFile

BUFFER_CHUNKS = 4


@dataclass
class Part:
    """One shard's rows in one split: local row numbers into its encoded arrays."""

    key: str  # the raw batch
    ids: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray  # ascending, of row_dtype (2 bytes a row for a batch of up to 65,536)
    label_ids: np.ndarray
    label_offsets: np.ndarray
    label_columns: np.ndarray  # the shard's label id -> column in the corpus labels (-1: none)
    files: tuple[ShardFile, ...] = field(default=(), repr=False)  # the arrays' memory maps

    def shard_rows(self, local: np.ndarray | None = None) -> np.ndarray:
        """Row numbers into the shard's arrays, all of them or those at ``local``, as int64:
        ``rows`` is as narrow as the shard allows, and ``rows + 1`` must not wrap around."""
        return (self.rows if local is None else self.rows[local]).astype(np.int64)

    def release(self) -> None:
        """Drop the pages of this part's shards that this process has read (see
        ``ShardFile.release``): a pass over every part then leaves the resident memory as it
        found it."""
        for file in self.files:
            file.release()


@dataclass
class ShardedSplit:
    """One split over memory-mapped shards, with ``EncodedSplit``'s batch interface.

    Row ``i`` is the ``i``-th kept record of the split in corpus order; ``parts`` hold
    them shard by shard.
    """

    parts: list[Part]
    num_labels: int
    bases: np.ndarray = field(init=False)  # first row of each part, then the total
    _lengths: np.ndarray | None = field(default=None, init=False, repr=False)
    _labels: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.bases = np.zeros(len(self.parts) + 1, dtype=np.int64)
        np.cumsum([len(p.rows) for p in self.parts], out=self.bases[1:])

    def __len__(self) -> int:
        return int(self.bases[-1])

    @property
    def lengths(self) -> np.ndarray:
        """Ids per row (int64), for ``train_batches``/``eval_batches`` (built on first use, then
        kept: :func:`stream_batches` needs only :meth:`lengths_of` its drawn rows)."""
        if self._lengths is None:
            self._lengths = np.zeros(len(self), dtype=np.int64)
            for p, base in zip(self.parts, self.bases.tolist(), strict=False):
                rows = p.shard_rows()
                np.subtract(p.offsets[rows + 1], p.offsets[rows], out=self._lengths[base : base + len(rows)])
                p.release()
        return self._lengths

    def lengths_of(self, rows: np.ndarray) -> np.ndarray:
        """``lengths[rows]`` (int64), reading only the parts those rows are in."""
        if self._lengths is not None:
            return self._lengths[rows]
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.int64)
        part, local = self.locate(rows)
        for index in np.unique(part):
            p, where = self.parts[index], np.flatnonzero(part == index)
            shard_rows = p.shard_rows(local[where])
            out[where] = p.offsets[shard_rows + 1] - p.offsets[shard_rows]
        return out

    @property
    def labels(self) -> np.ndarray:
        """The dense 0/1 ``uint8 [rows, labels]`` matrix (built on first use, then kept)."""
        if self._labels is None:
            self._labels = self.targets(np.arange(len(self))).astype(np.uint8)
        return self._labels

    def label_counts(self) -> np.ndarray:
        """Positives per label, without the dense matrix."""
        total = np.zeros(self.num_labels, dtype=np.int64)
        for p in self.parts:
            rows = p.shard_rows()
            starts, ends = p.label_offsets[rows], p.label_offsets[rows + 1]
            columns = p.label_columns[np.asarray(p.label_ids)[flat_ranges(starts, ends)]]
            total += np.bincount(columns[columns >= 0], minlength=self.num_labels)
            p.release()
        return total

    def concat(self, other: ShardedSplit) -> ShardedSplit:
        """The rows of this split then those of ``other`` (``concat_splits`` for shards)."""
        return ShardedSplit(self.parts + other.parts, self.num_labels)

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's part and its local row number in that part's encoded arrays."""
        part = np.searchsorted(self.bases, rows, side="right") - 1
        return part, rows - self.bases[part]

    def targets(self, rows: np.ndarray) -> np.ndarray:
        """Float 0/1 targets ``[len(rows), labels]``."""
        out = np.zeros((len(rows), self.num_labels), dtype=np.float32)
        part, local = self.locate(np.asarray(rows, dtype=np.int64))
        for index in np.unique(part):
            p, where = self.parts[index], np.flatnonzero(part == index)
            shard_rows = p.shard_rows(local[where])
            starts, ends = p.label_offsets[shard_rows], p.label_offsets[shard_rows + 1]
            columns = p.label_columns[np.asarray(p.label_ids)[flat_ranges(starts, ends)]]
            row_of = np.repeat(where, ends - starts)
            keep = columns >= 0
            out[row_of[keep], columns[keep]] = 1.0
        return out

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids ``[b, longest]``, lengths ``[b]`` and float targets ``[b, labels]``."""
        rows = np.asarray(rows, dtype=np.int64)
        part, local = self.locate(rows)
        lengths = np.zeros(len(rows), dtype=np.int64)
        gathered: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for index in np.unique(part):
            p, where = self.parts[index], np.flatnonzero(part == index)
            shard_rows = p.shard_rows(local[where])
            starts = p.offsets[shard_rows]
            lengths[where] = p.offsets[shard_rows + 1] - starts
            gathered.append((where, starts, p.ids))
        width = int(lengths.max()) if len(rows) else 1
        steps = np.arange(width)
        padded = np.zeros((len(rows), width), dtype=np.int64)
        for where, starts, ids in gathered:
            mask = steps[None, :] < lengths[where][:, None]
            positions = (starts[:, None] + steps[None, :])[mask]
            block = np.zeros((len(where), width), dtype=np.int64)
            block[mask] = ids[positions]
            padded[where] = block
        return torch.from_numpy(padded), torch.from_numpy(lengths), torch.from_numpy(self.targets(rows))


class SplitTexts(Sequence[str]):
    """A split's raw texts in row order, read from its raw batches on first use.

    ``len`` needs no reading; the texts are parsed again from the batches (the shards keep
    tokens, not texts), which costs a parse of the batches holding the split's rows.
    """

    def __init__(self, store: ObjectStore, split: ShardedSplit) -> None:
        self.store, self.split = store, split
        self._texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.split)

    def _read(self) -> list[str]:
        if self._texts is None:
            texts: list[str] = []
            for part in self.split.parts:
                if not len(part.rows):
                    continue
                data = self.store.get(part.key)
                # The shard's rows are the batch's labeled records, in order (tokenize_batch).
                labeled = [r.text for r in codecs.read_jsonl_bytes(data, codecs.ParseStats()) if r.domains]
                texts.extend(labeled[int(i)] for i in part.rows)
            self._texts = texts
        return self._texts

    def __getitem__(self, index: Any) -> Any:
        return self._read()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())


def row_dtype(rows: int) -> np.dtype[Any]:
    """The smallest dtype for the row numbers of a shard of ``rows`` rows: 2 bytes a row up to
    65,536 rows (the collector's batches), 4 up to 2**32, else 8. Kept rows are the one array
    the corpus holds per tweet, so their width is the corpus's memory; every use reads them
    through ``Part.shard_rows``, widened to int64 before anything is added to them."""
    for dtype in (np.uint16, np.uint32):
        if rows <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def flat_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, e)`` for each pair, without a Python loop."""
    counts = ends - starts
    if not len(counts) or not counts.sum():
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))


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
    if not len(split):
        raise ValueError("the split has no rows to train on")
    owned = assign_parts(split, seed, epoch, world_size)
    if world_size == 1:
        return -(-len(split) // batch_size)  # the short last batch too
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
            if exhausted and world_size == 1 and len(buffer) and step < total:
                if step >= position.step:  # the short last batch, drawn like any chunk
                    yield buffer[np.argsort(split.lengths_of(buffer), kind="stable")]
                step += 1
            break
        take = rng.choice(len(buffer), size=min(chunk, len(buffer)), replace=False)
        drawn = buffer[take]
        keep = np.ones(len(buffer), dtype=bool)
        keep[take] = False
        buffer = buffer[keep]
        drawn = drawn[np.argsort(split.lengths_of(drawn), kind="stable")]
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
