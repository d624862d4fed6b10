"""``benchmarks/quality.py --dry-run``: the quality benchmark's plumbing on real tweets.

The dry run trains our recipes through the trainer for one epoch on 300 benchmark tweets, fits
the TF-IDF peer, fine-tunes a tiny BERT teacher for two steps (the real MiniLM fine-tune takes
an hour) and distils it into the LSTM with a few unlabeled tweets, then does the same on
TweetTopicXL (100 of its test tweets); the figures mean nothing, the report's shape and last
line do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, require_data

LAST_LINE = re.compile(
    r"lstm_micro=[\d.]+ lstm_macro=[\d.]+ lstm_p1=[\d.]+ best_peer_micro=[\d.]+ "
    r"best_peer_macro=[\d.]+ best_peer_p1=[\d.]+ lstm_vs_minilm_speed=(nan|[\d.]+) "
    r"finetuned_micro=[\d.]+ finetuned_macro=[\d.]+ finetuned_p1=[\d.]+ lstm_vs_finetuned_speed=[\d.]+ "
    r"distilled_micro=[\d.]+ distilled_macro=[\d.]+ distilled_p1=[\d.]+"
)


def test_dry_run_writes_the_table_and_prints_the_figures_line(tmp_path: Path) -> None:
    data = require_data("benchmark/train.jsonl").parents[1]
    out = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "quality.py"),
            "--dry-run",
            "--skip",
            "fasttext,minilm",  # their packages are the [quality] extra, not the dev set
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TWEETDOMAINS_DATA_DIR": str(data)},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert LAST_LINE.fullmatch(done.stdout.strip().splitlines()[-1])
    main, topicxl = (out / "quality.md").read_text(encoding="utf-8").split("## TweetTopicXL (English)")
    for row in (
        "LSTM (ours)",
        "LSTM (ours), bfloat16 serving",
        "RNN (ours)",
        "TF-IDF + LR",
        "LSTM (original recipe)",
        "MiniLM fine-tuned (teacher)",
        "LSTM distilled (ours)",
    ):
        assert f"| {row} |" in main
    for row in ("LSTM (ours)", "TF-IDF + LR", "MiniLM fine-tuned (teacher)", "LSTM distilled (ours)"):
        assert f"| {row} |" in topicxl
    report = json.loads((out / "quality.json").read_text(encoding="utf-8"))
    assert report["recipe"]["model"] == "lstm" and len(report["rows"]) == 7
    assert [r["name"] for r in report["topicxl"]] == [
        "LSTM (ours)",
        "TF-IDF + LR",
        "MiniLM fine-tuned (teacher)",
        "LSTM distilled (ours)",
    ]
    assert (out / "quality.png").read_bytes()[:4] == b"\x89PNG"
