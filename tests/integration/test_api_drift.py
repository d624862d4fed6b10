"""Drift: the /metrics gauges follow the traffic's topics; ``tweetdomains drift`` compares a
day of collected raw batches with the served run's training labels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.api_helpers import ApiProcess, publish_model
from tweetdomains.codecs import write_jsonl_gz
from tweetdomains.records import Record
from tweetdomains.store import open_store

LINEAGE = {"records": 100, "label_counts": {"Brand": 10, "Musician": 50, "Person": 60, "Sport": 20}}


def _live(api: ApiProcess) -> dict[str, float]:
    shares = {}
    for line in httpx.get(api.base + "/metrics").text.splitlines():
        if line.startswith("tweetdomains_drift_live_share{"):
            domain = line.split('domain="', 1)[1].split('"', 1)[0]
            shares[domain] = float(line.rsplit(" ", 1)[1])
    return shares


def test_drift_gauges_move_when_the_topics_change(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    publish_model(store, seed=3, lineage=LINEAGE)  # seed 3 predicts these two topics apart
    api = ApiProcess(store, env={"TWEETDOMAINS_DRIFT_WINDOW": "40"}).start(tmp_path)
    try:
        music = [f"taylor swift album song music {i}" for i in range(40)]
        sport = [f"goal match arsenal team {i}" for i in range(40)]
        by_topic = []
        for texts in (music, sport):
            response = httpx.post(api.base + "/classify/batch", json={"texts": texts})
            assert response.status_code == 200
            by_topic.append(response.json()["results"][0]["predicted"])
        assert by_topic[0] != by_topic[1], "the test model tells these topics apart"
        sport_shares = _live(api)  # the window holds the 40 sport texts only
        assert all(sport_shares[d] == 1.0 for d in by_topic[1]), sport_shares
        httpx.post(api.base + "/classify/batch", json={"texts": music})
        music_shares = _live(api)
        assert music_shares != sport_shares
        assert all(music_shares[d] == 1.0 for d in by_topic[0]), music_shares
        text = httpx.get(api.base + "/metrics").text
        assert 'tweetdomains_drift_training_share{domain="Musician"} 0.5' in text
        assert "tweetdomains_drift_window_texts 40.0" in text
    finally:
        api.stop()


def test_drift_command_prints_the_domains_that_moved_most(tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    run_id = publish_model(store_uri, seed=1, lineage=LINEAGE)
    store = open_store(store_uri)
    day = [Record(f"game {i}", domains=("Sport",)) for i in range(30)]
    day += [Record(f"song {i}", domains=("Musician", "Person")) for i in range(10)]
    store.put("raw/2026/11/30/10/a.jsonl.gz", write_jsonl_gz(day[:20]))
    store.put("raw/2026/11/30/11/b.jsonl.gz", write_jsonl_gz(day[20:]))
    store.put("raw/2026/11/29/10/old.jsonl.gz", write_jsonl_gz([Record("x", domains=("Brand",))]))
    result = subprocess.run(
        [sys.executable, "-m", "tweetdomains", "drift", "--store", store_uri, "--top", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"run {run_id} against 40 records in 2 batches of 2026-11-30"
    # Sport: 20% of training texts, 75% of the day's: the largest move, first.
    assert lines[2].split()[0] == "Sport" and lines[2].endswith("+55.0pp"), lines
    assert len(lines) == 2 + 3
    bad = subprocess.run(
        [sys.executable, "-m", "tweetdomains", "drift", "--store", store_uri, "--day", "yesterday"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
