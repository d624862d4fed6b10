"""``tweetdomains sweep``: train every row of a grid, tabulate, promote the best.

The two built-in grids are the original project's tables. Its LSTM table varied embedding
size {100, 200} x hidden size {50, 100} x LSTM layers {1, 2} x linear layers {1, 2} with
dropout 0.3, learning rate 0.01, 5 epochs and batches of 10,000 tweets (a batch never holds
more than the whole train split, so on small data that is one step per epoch). Its RNN table
varied learning rate x embedding size x hidden size; its exact rows are not recorded, so
``seed-rnn`` takes the values of the LSTM table (lr {0.01, 0.001}, embedding {100, 200},
hidden {50, 100}: 8 rows) under the same fixed settings. Both use the original's model
shape (one direction, the last hidden state) but our multi-label loss, data path and
thresholds, and report micro/macro-F1 and P@1 beside each row.

A YAML grid file has ``name``, ``base`` (fixed options) and either ``grid`` (option ->
list of values, every combination in order) or ``rows`` (a list of option maps).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tweetdomains.registry import Registry
from tweetdomains.store import open_store
from tweetdomains_trainer import reports
from tweetdomains_trainer.data import EncodedDataset
from tweetdomains_trainer.options import PER_RUN_OPTIONS, TrainOptions
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.publish import PROMOTION_METRIC
from tweetdomains_trainer.train import prepare_data, train

_ORIGINAL = {
    "dropout": 0.3,
    "epochs": 5,
    "batch_size": 10_000,
    "bidirectional": False,
    "pooling": "last",
    "schedule": "none",
    "patience": 5,
}
SEED_GRIDS: dict[str, dict[str, Any]] = {
    "seed-rnn": {
        "name": "seed-rnn",
        "base": {**_ORIGINAL, "model": "rnn", "recurrent_layers": 1, "linear_layers": 1},
        "grid": {"lr": [0.01, 0.001], "embedding_dim": [100, 200], "hidden_dim": [50, 100]},
    },
    "seed-lstm": {
        "name": "seed-lstm",
        "base": {**_ORIGINAL, "model": "lstm", "lr": 0.01},
        "grid": {
            "embedding_dim": [100, 200],
            "hidden_dim": [50, 100],
            "recurrent_layers": [1, 2],
            "linear_layers": [1, 2],
        },
    },
}
COLUMN_NAMES = {
    "lr": "learning rate",
    "embedding_dim": "embedding size",
    "hidden_dim": "hidden size",
    "recurrent_layers": "recurrent layers",
    "linear_layers": "linear layers",
    "dropout": "dropout",
    "batch_size": "batch size",
    "epochs": "epochs",
    "model": "model",
}
# Options that change the encoded data rather than the model: rows that differ in these
# are encoded separately.
DATA_OPTIONS = (
    "data",
    "label_field",
    "vocab",
    "test_percent",
    "validation_percent",
    "min_count",
    "max_vocab",
    "max_tokens",
)


def _column_name(option: str, grid: dict[str, Any]) -> str:
    if option == "recurrent_layers" and grid["base"].get("model") in ("lstm", "rnn"):
        return f"{grid['base']['model'].upper()} layers"  # the original's heading
    return COLUMN_NAMES.get(option, option)


def _check_options(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a mapping of option -> value")
    known = {f.name for f in fields(TrainOptions)} - set(PER_RUN_OPTIONS)
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ValueError(f"{where}: unknown options {unknown} (known: {sorted(known)})")
    return dict(obj)


def load_grid(ref: str) -> dict[str, Any]:
    """A built-in grid by name, or a YAML file; ValueError with the reason when unusable."""
    if ref in SEED_GRIDS:
        spec = SEED_GRIDS[ref]
    else:
        path = Path(ref)
        if not path.is_file():
            raise ValueError(f"--grid {ref!r} is neither {' nor '.join(SEED_GRIDS)} nor a file")
        import yaml

        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"grid file {ref} is not valid YAML: {exc}") from None
        if not isinstance(spec, dict):
            raise ValueError(f"grid file {ref} must hold a mapping with base and grid or rows")
        spec = {"name": str(spec.get("name") or path.stem), **spec}
    base = _check_options(spec.get("base") or {}, "base")
    if "rows" in spec:
        if not isinstance(spec["rows"], list) or not spec["rows"]:
            raise ValueError("rows must be a non-empty list")
        rows = [_check_options(r, f"row {i + 1}") for i, r in enumerate(spec["rows"])]
        columns = list(dict.fromkeys(k for r in rows for k in r))
    else:
        grid = _check_options(spec.get("grid") or {}, "grid")
        if not grid or not all(isinstance(v, list) and v for v in grid.values()):
            raise ValueError("grid must map each option to a non-empty list of values")
        columns = list(grid)
        rows = [dict(zip(columns, values, strict=True)) for values in itertools.product(*grid.values())]
    for i, row in enumerate(rows):
        try:
            TrainOptions(**{**base, **row})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"row {i + 1} of grid {spec['name']}: {exc}") from None
    return {"name": str(spec["name"]), "base": base, "columns": columns, "rows": rows}


def sweep(
    store_uri: str, grid: dict[str, Any], overrides: dict[str, Any] | None = None, max_rows: int | None = None
) -> dict[str, Any]:
    """Train each row (``overrides`` replace the base settings, never a row's own values),
    write ``reports/sweep-<name>-<time>.md/.png/.json`` and return the summary."""
    store = open_store(store_uri)
    rows = grid["rows"][:max_rows] if max_rows else grid["rows"]
    encoded_by_data: dict[str, EncodedDataset] = {}
    results: list[dict[str, Any]] = []
    for i, row in enumerate(rows, start=1):
        options = TrainOptions(**{**grid["base"], **(overrides or {}), **row, "store": store_uri})
        data_key = json.dumps({k: getattr(options, k) for k in DATA_OPTIONS}, sort_keys=True)
        if data_key not in encoded_by_data:
            encoded_by_data[data_key] = prepare_data(options, store, Progress(False))
        if options.progress:
            print(f"== {grid['name']} row {i}/{len(rows)}: {json.dumps(row)}", flush=True)
        result = train(options, store, encoded_by_data[data_key])
        m = result.metrics
        test = m.get("test") or {}
        results.append(
            {
                "row": i,
                **row,
                "val_micro_f1": m[PROMOTION_METRIC],
                "test_micro_f1": test.get("micro_f1"),
                "test_macro_f1": test.get("macro_f1"),
                "test_p_at_1": test.get("p_at_1"),
                "epochs_run": m["epochs_run"],
                "seconds": m["train_seconds"],
                "run_id": result.run_id,
                "promoted": result.promoted,
            }
        )
    best_row = max(results, key=lambda r: r["val_micro_f1"])
    best = Registry(store).best()
    headers = [
        "#",
        *(_column_name(c, grid) for c in grid["columns"]),
        "val micro-F1",
        "test micro-F1",
        "test macro-F1",
        "test P@1",
        "epochs",
        "seconds",
        "run id",
    ]
    table = [
        [
            r["row"],
            *(r[c] for c in grid["columns"]),
            r["val_micro_f1"],
            "-" if r["test_micro_f1"] is None else r["test_micro_f1"],
            "-" if r["test_macro_f1"] is None else r["test_macro_f1"],
            "-" if r["test_p_at_1"] is None else r["test_p_at_1"],
            r["epochs_run"],
            round(r["seconds"], 1),
            r["run_id"] + (" **(best)**" if r is best_row else ""),
        ]
        for r in results
    ]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base_key = f"reports/sweep-{grid['name']}-{stamp}"
    fixed = {k: v for k, v in {**grid["base"], **(overrides or {})}.items() if k not in grid["columns"]}
    markdown = "\n".join(
        [
            f"# Sweep {grid['name']}",
            "",
            f"{len(results)} rows; fixed settings: "
            + ", ".join(f"{k}={v}" for k, v in sorted(fixed.items()) if k not in ("progress",)),
            "",
            "Selection is by validation micro-F1 (tuned thresholds); test columns use the same "
            "thresholds. P@1 is the multi-label counterpart of the original's accuracy.",
            "",
            reports.table_markdown(headers, table),
            f"Best row: {best_row['row']} ({best_row['run_id']}); store's best run now: "
            f"{best['run_id'] if best else 'none'}.",
            "",
            f"![sweep table]({base_key.rsplit('/', 1)[1]}.png)",
            "",
        ]
    )
    store.put(f"{base_key}.md", markdown.encode())
    store.put(f"{base_key}.png", reports.table_png(headers, table, f"sweep {grid['name']}"))
    store.put(f"{base_key}.json", json.dumps(results, indent=2).encode())
    return {
        "grid": grid["name"],
        "rows": len(results),
        "best_run_id": best_row["run_id"],
        "best_val_micro_f1": best_row["val_micro_f1"],
        "store_best_run_id": best["run_id"] if best else None,
        "report": f"{base_key}.md",
    }
