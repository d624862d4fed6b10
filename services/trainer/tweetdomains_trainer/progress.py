"""What a job tells the person running it, on stderr.

On a terminal: live tqdm bars for each pass over the batches, and a line per epoch. Anywhere
else (a container log, CI, a file): no carriage-return bars, just the line per epoch and a
heartbeat line every :data:`HEARTBEAT_SECONDS` during a long pass, so a log shows the job is
alive without hundreds of updates per epoch. With progress off, messages go to the log.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, TypeVar

import numpy as np
from tqdm import tqdm

log = logging.getLogger("tweetdomains_trainer")

HEARTBEAT_SECONDS = 30.0
T = TypeVar("T")


class Progress:
    """Messages and per-batch progress of one job (rank 0 of a distributed one)."""

    def __init__(
        self, enabled: bool, stream: IO[str] | None = None, heartbeat_seconds: float = HEARTBEAT_SECONDS
    ) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.heartbeat_seconds = heartbeat_seconds
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())

    def say(self, message: str) -> None:
        """One line for the person running the job (the log when progress is off)."""
        if self.enabled:
            print(message, file=self.stream, flush=True)
        else:
            log.info(message)

    def track(self, items: Sequence[T], desc: str, losses: Sequence[float] = ()) -> Iterator[T]:
        """Yield ``items``, showing how far the pass is and the recent mean of ``losses``
        (a list the caller appends to as it goes)."""
        if not self.enabled:
            yield from items
            return
        if self.terminal:
            bar = tqdm(items, desc=desc, leave=False, file=self.stream, dynamic_ncols=True)
            for i, item in enumerate(bar):
                yield item
                if i % 10 == 0 and losses:
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            return
        started = last = time.monotonic()
        for i, item in enumerate(items):
            yield item
            now = time.monotonic()
            if now - last >= self.heartbeat_seconds:
                last = now
                recent = f", loss {np.mean(losses[-50:]):.4f}" if losses else ""
                self.say(f"{desc}: batch {i + 1}/{len(items)}{recent} ({now - started:.0f} s)")
