"""``benchmarks/data_scale.py --dry-run``: both data paths, cold and after an append, on 2,000 records.

The figures mean nothing at this size; the report's lines and the last line's shape do.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

LAST_LINE = re.compile(
    r"records=2000 prep_s=[\d.]+ baseline_prep_s=[\d.]+ peak_rss_mb=\d+ baseline_peak_rss_mb=\d+ "
    r"retrain_prep_s=[\d.]+ first_step_s=[\d.]+"
)


def test_dry_run_measures_both_paths_and_prints_the_figures_line() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "data_scale.py"), "--dry-run", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
    report = "\n".join(lines)
    assert "baseline: prep" in report and report.count("sharded: prep") == 2
    assert "appended 100 records" in report
    # The retrain tokenizes only the appended batch, and both runs dedupe the same way.
    assert re.search(r"5 batches, 1 tokenized now", report), report
