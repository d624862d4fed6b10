"""The collector benchmark's dry run: journal on and off and the one-put baseline all run."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_collector_benchmark_dry_run() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "collector.py"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    figures = dict(part.split("=") for part in last.split())
    assert {
        "tweets_per_s",
        "baseline_tweets_per_s",
        "ratio",
        "journal_tweets_per_s",
        "journal_cost_pct",
    } <= set(figures)
