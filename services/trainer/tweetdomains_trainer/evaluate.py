"""``tweetdomains evaluate``: score a published run on labeled records, as the API would predict."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tweetdomains import codecs
from tweetdomains.calibration import Calibration, calibration_error
from tweetdomains.dataset import file_records
from tweetdomains.metrics import binarize, score
from tweetdomains.predict import Classifier
from tweetdomains.registry import Registry
from tweetdomains.store import open_store
from tweetdomains_trainer import reports


def evaluate(
    store_uri: str,
    run: str,
    data: Sequence[str],
    label_field: str = "domains",
    write_report: bool = True,
) -> dict[str, Any]:
    """Metrics JSON of run ``run`` (an id or ``best``) on the labeled records of ``data``.

    ``micro_f1``/``macro_f1``/``p_at_1``/``per_label`` use the run's tuned thresholds (what
    the API's ``predicted`` shows); ``at_0_5`` is the same with the plain 0.5 rule;
    ``calibration`` the expected calibration error of the served (calibrated) probabilities and,
    for a calibrated run, the same weights' uncalibrated probabilities and thresholds beside it.
    """
    store = open_store(store_uri)
    registry = Registry(store)
    classifier = Classifier.load(registry, run)
    stats = codecs.ParseStats()
    records = [r for r in file_records(data, stats, label_field=label_field) if r.domains]
    if not records:
        raise ValueError(f"no labeled records in {', '.join(data)} ({stats.summary()})")
    probs = classifier.predict_proba([r.text for r in records])
    y = binarize([r.domains for r in records], classifier.labels)
    result = score(y, probs, classifier.labels, classifier.thresholds)
    plain = score(y, probs, classifier.labels, 0.5)
    calibration = {"method": classifier.calibration.method if classifier.calibration else "identity"}
    calibration["served"] = calibration_error(y, probs, classifier.labels)
    raw_thresholds = classifier.metrics.get("calibration", {}).get("uncalibrated_thresholds")
    if classifier.calibration is not None and not classifier.calibration.is_identity and raw_thresholds:
        served = classifier.calibration
        classifier.calibration = Calibration.identity(len(classifier.labels))
        try:
            raw_probs = classifier.predict_proba([r.text for r in records])
        finally:
            classifier.calibration = served
        raw = score(y, raw_probs, classifier.labels, np.asarray(raw_thresholds, dtype=np.float32))
        calibration["uncalibrated"] = {
            **calibration_error(y, raw_probs, classifier.labels),
            **{k: raw[k] for k in ("micro_f1", "macro_f1", "p_at_1")},
        }
    known = set(classifier.labels)
    unknown = sorted({d for r in records for d in r.domains} - known)
    out: dict[str, Any] = {
        "run_id": classifier.run_id,
        "n": result["n"],
        "micro_f1": result["micro_f1"],
        "macro_f1": result["macro_f1"],
        "p_at_1": result["p_at_1"],
        "at_0_5": {k: plain[k] for k in ("micro_f1", "macro_f1", "p_at_1")},
        "calibration": calibration,
        "labels_unknown_to_model": unknown,
        "data": list(data),
        "per_label": result["per_label"],
    }
    if write_report:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        base = f"reports/evaluate-{classifier.run_id}-{stamp}"
        store.put(f"{base}.json", json.dumps(out, indent=2, ensure_ascii=False).encode())
        md = [
            f"# Evaluation of run {classifier.run_id}",
            "",
            f"Data: {', '.join(data)} ({result['n']} labeled tweets; {stats.summary()})",
            "",
            *reports.metrics_lines("tuned thresholds", result),
            *reports.metrics_lines("0.5 rule", {**plain, "n": result["n"]}),
            "",
            f"Labels in the data the model does not know: {', '.join(unknown) or 'none'}",
            "",
            f"![per-domain F1]({base.rsplit('/', 1)[1]}.png)",
            "",
            reports.per_label_markdown(result["per_label"]),
        ]
        store.put(f"{base}.md", "\n".join(md).encode())
        store.put(
            f"{base}.png",
            reports.per_label_f1_png(result["per_label"], f"per-domain F1, {classifier.run_id}"),
        )
        out["report"] = f"{base}.md"
    return out
