"""Sharded splits that carry a teacher's soft labels: distillation on the store's sharded path.

:class:`DistillShardedSplit` is a :class:`~.stream.ShardedSplit` with ``soft`` and ``labeled``
per row, whose batches' targets are ``[labels | soft | labeled]`` as
:class:`~.data.DistillSplit`'s are, so :class:`~tweetdomains.model.DistillationLoss` and the
trainer's steps read them unchanged. Unlabeled tweets join it as in-memory parts
(:func:`memory_parts`: rows into one encoded array, no labels), so
:func:`~.stream.stream_batches` and :func:`~.stream.assign_parts` stream them with the shards.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from tweetdomains_trainer.data import EncodedSplit
from tweetdomains_trainer.stream import Part, ShardedSplit, row_dtype

# The unlabeled tweets are cut into parts of at most this many rows, so under torchrun they
# spread over the ranks as shards do (one part would go to one rank).
MEMORY_PART_ROWS = 4096


@dataclass
class DistillShardedSplit(ShardedSplit):
    """A sharded split with the teacher's probabilities (``soft``, float32 ``[rows, labels]``)
    and ``labeled`` (False for an unlabeled tweet) per row."""

    soft: np.ndarray
    labeled: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.soft.shape != (len(self), self.num_labels) or self.labeled.shape != (len(self),):
            raise ValueError(
                f"soft labels {self.soft.shape} and labeled {self.labeled.shape} do not fit "
                f"{len(self)} rows of {self.num_labels} labels"
            )

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``ShardedSplit.batch`` with targets ``[labels | soft | labeled]``."""
        rows = np.asarray(rows, dtype=np.int64)
        ids, lengths, hard = super().batch(rows)
        soft = torch.from_numpy(self.soft[rows].astype(np.float32))
        labeled = torch.from_numpy(self.labeled[rows].astype(np.float32))[:, None]
        return ids, lengths, torch.cat([hard, soft, labeled], dim=1)

    def concat(self, other: ShardedSplit) -> DistillShardedSplit:
        """The rows of this split then those of ``other`` (another split with soft labels)."""
        if not isinstance(other, DistillShardedSplit):
            raise TypeError("a split with soft labels joins only another one")
        return DistillShardedSplit(
            self.parts + other.parts,
            self.num_labels,
            np.concatenate([self.soft, other.soft]),
            np.concatenate([self.labeled, other.labeled]),
        )

    def labeled_rows(self) -> int:
        """How many rows are labeled tweets (positive weights count only these)."""
        return int(np.count_nonzero(self.labeled))


def memory_parts(key: str, split: EncodedSplit, rows_per_part: int = MEMORY_PART_ROWS) -> list[Part]:
    """An encoded split's rows (their labels unread) as parts of at most ``rows_per_part``."""
    label_offsets = np.zeros(len(split) + 1, dtype=np.int64)
    return [
        Part(
            key=f"{key}#{start}",
            ids=split.ids,
            offsets=split.offsets,
            rows=np.arange(start, min(start + rows_per_part, len(split)), dtype=row_dtype(len(split))),
            label_ids=np.zeros(0, dtype=np.uint16),
            label_offsets=label_offsets,
            label_columns=np.array([-1], dtype=np.int64),
        )
        for start in range(0, len(split), rows_per_part)
    ]


def first_rows(split: ShardedSplit, n: int) -> ShardedSplit:
    """The split's first ``n`` rows (a dry run's), its parts cut, nothing copied."""
    parts, left = [], n
    for part in split.parts:
        parts.append(replace(part, rows=part.rows[: max(left, 0)]))
        left -= len(parts[-1].rows)
    return ShardedSplit(parts, split.num_labels)
