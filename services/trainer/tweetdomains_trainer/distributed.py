"""This process's place in a ``torchrun`` job: process group, its share of the batches, agreement."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job (world 1 without one)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )

    def start(self, device: torch.device) -> None:
        if self.world_size > 1 and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def first_on_main(self, work: Callable[[], T]) -> T:
        """``work()`` on rank 0, then on the other ranks once it is done, so they find what it
        wrote to the store instead of writing it too. Rank 0's error is raised after the
        barrier, so no rank waits for one that failed (the others meet the same error)."""
        if self.world_size == 1:
            return work()
        if self.is_main:
            try:
                result = work()
            finally:
                torch.distributed.barrier()
            return result
        torch.distributed.barrier()
        return work()

    def shard(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """This rank's batches; every rank gets the same number, so collectives line up."""
        if self.world_size == 1:
            return batches
        per_rank = max(len(batches) // self.world_size, 1)
        return [batches[(self.rank + self.world_size * i) % len(batches)] for i in range(per_rank)]

    def agree(self, value: float, device: torch.device) -> float:
        """Rank 0's value on every rank: early stopping and the LR schedule decide as one."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.broadcast(tensor, src=0)
        return float(tensor.item())
