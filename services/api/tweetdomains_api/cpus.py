"""CPUs this process may use, and how many of them the forward pass gets."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> float:
    """CPUs this process may use: the cgroup quota (a container's CPU limit) or its affinity."""
    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return cpus


def inference_threads() -> int:
    """Torch threads for the forward pass: one CPU stays with the event loop (HTTP, JSON, cache).

    Measured on 2 shared cores: 1 intra-op thread ran this model 4-10x faster than 2, which
    fought the event loop (and each other) for the same cores.
    """
    return max(1, int(available_cpus()) - 1)
