"""An exponential moving average of the weights (Polyak averaging), kept beside the model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """An exponential moving average of the weights, updated after every optimizer step.

    Checkpoint averaging in its streaming form (Polyak averaging): validation, early
    stopping and the published model all use the averaged weights, which sit in a flatter
    part of the loss surface than any single step's and vary less from seed to seed.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def load(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.state = {k: v.to(device) for k, v in state.items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = model.state_dict()
        averaged = [v for k, v in self.state.items() if v.is_floating_point()]
        latest = [current[k] for k, v in self.state.items() if v.is_floating_point()]
        torch._foreach_lerp_(averaged, latest, 1.0 - self.decay)

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own ones after it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            yield
        finally:
            model.load_state_dict(own)
