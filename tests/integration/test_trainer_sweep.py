"""Sweeps: one table row per grid row, the best promoted; the built-in grids are the original's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer.sweep import load_grid

GRID = """
name: tiny
base: {model: lstm, embedding_dim: 8, linear_layers: 1, batch_size: 64, epochs: 1}
grid:
  hidden_dim: [8, 12]
  recurrent_layers: [1, 2]
"""


def test_sweep_writes_one_row_per_grid_row_and_promotes_the_best(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "records.jsonl"
    data.write_text("".join(r.to_json() + "\n" for r in generate(400, seed=8)), encoding="utf-8")
    grid = tmp_path / "tiny.yaml"
    grid.write_text(GRID, encoding="utf-8")
    store_uri = str(tmp_path / "store")
    argv = ["sweep", "--store", store_uri, "--grid", str(grid), "--data", str(data), "--no-progress"]
    assert cli_main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == 4

    store = LocalStore(store_uri)
    reports = list(store.list("reports/"))
    markdown = next(k for k in reports if k.endswith(".md"))
    assert any(k.endswith(".png") for k in reports)
    table = [line for line in store.get(markdown).decode().splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4  # header + one line per grid row
    assert "hidden size" in table[0] and "val micro-F1" in table[0] and "test P@1" in table[0]
    rows = json.loads(store.get(markdown.replace(".md", ".json")))
    assert [(r["hidden_dim"], r["recurrent_layers"]) for r in rows] == [(8, 1), (8, 2), (12, 1), (12, 2)]
    best = max(rows, key=lambda r: r["val_micro_f1"])
    registry = Registry(store)
    assert set(registry.runs()) == {r["run_id"] for r in rows}
    assert registry.best()["value"] == best["val_micro_f1"]


def test_seed_grids_are_the_originals_rows() -> None:
    lstm = load_grid("seed-lstm")
    assert len(lstm["rows"]) == 16
    assert lstm["base"]["lr"] == 0.01 and lstm["base"]["dropout"] == 0.3
    assert lstm["base"]["epochs"] == 5 and lstm["base"]["batch_size"] == 10_000
    assert {"embedding_dim": 200, "hidden_dim": 100, "recurrent_layers": 2, "linear_layers": 2} in lstm[
        "rows"
    ]
    rnn = load_grid("seed-rnn")
    assert len(rnn["rows"]) == 8 and rnn["base"]["model"] == "rnn"


def test_bad_grid_files_are_refused_with_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: {hiden_dim: [1, 2]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown options"):
        load_grid(str(bad))
    bad.write_text("grid: {hidden_dim: [0]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="row 1"):
        load_grid(str(bad))
    with pytest.raises(ValueError, match="neither"):
        load_grid(str(tmp_path / "absent.yaml"))


def test_the_shipped_grid_files_load() -> None:
    from tests.conftest import ROOT

    files = sorted((ROOT / "services" / "trainer" / "grids").glob("*.yaml"))
    assert files
    for path in files:
        grid = load_grid(str(path))
        assert grid["rows"] and grid["name"] == path.stem
