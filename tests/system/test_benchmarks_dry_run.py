"""The API and training benchmarks' dry runs: every phase and row runs and the figures line is whole.

(The collector, data-scale and quality benchmarks have dry-run tests of their own.)
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

LAST_LINE_KEYS = {
    "api.py": {
        "raw",
        "api",
        "hit",
        "floor",
        "naive",
        "hit_vs_floor",
        "overload_p99_ms",
        "shed_share",
        "lone_p50_ms",
        "raw_single_ms",
        "floor_p50_ms",
    },
    "training.py": {"ours_tweets_per_s", "original_tweets_per_s", "ratio", "shipped_tweets_per_s"},
}


@pytest.mark.parametrize("script", sorted(LAST_LINE_KEYS))
def test_benchmark_dry_run_prints_its_figures(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    figures = dict(part.split("=", 1) for part in last.split())
    assert LAST_LINE_KEYS[script] <= set(figures), last
    assert all(float(value) >= 0 for value in figures.values()), last
