"""Champion/challenger promotion: a new run replaces the served best only when it beats it on
the same held-out tweets.

Comparing each run's validation figure on its own data says nothing (a model trained on
synthetic tweets scores 1.0 on synthetic validation): the champion is re-scored on the
challenger's validation split, through its own vocabulary, calibration and thresholds, as the
API would predict. A gold label the champion does not know is a miss, a label it predicts that
the challenger's data does not have is a false positive. The decision and its reason go into
the challenger's ``metrics.json`` under ``promotion`` (shown by the API's ``/model``) and into
``train``'s last line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tweetdomains.metrics import binarize, decide, prediction_scores
from tweetdomains.predict import Classifier
from tweetdomains.registry import Registry, RegistryError

METRIC = "val_micro_f1"


@dataclass
class Challenger:
    """What the comparison needs of the new run: its validation split and its decisions on it."""

    run_id: str
    labels: list[str]
    texts: Sequence[str]
    targets: np.ndarray  # [n, labels] 0/1 over ``labels``
    probs: np.ndarray  # calibrated validation probabilities
    thresholds: np.ndarray
    lineage: dict[str, Any]


def decide_promotion(registry: Registry, challenger: Challenger) -> dict[str, Any]:
    """``{"promote": bool, "reason": sentence, ...figures}``: whether ``challenger`` beats the
    current best on the challenger's validation split."""
    gold = [[challenger.labels[j] for j in np.flatnonzero(row)] for row in challenger.targets]
    mine = decide(challenger.probs, challenger.thresholds)
    own = prediction_scores(challenger.targets, mine, challenger.probs.argmax(axis=1))
    out: dict[str, Any] = {
        "metric": METRIC,
        "compared_on": f"validation split of {challenger.run_id} ({len(gold)} tweets)",
        "challenger": {"run_id": challenger.run_id, **own},
    }
    best = registry.best()
    if best is None:
        return {**out, "promote": True, "champion": None, "reason": "no model was promoted before"}
    champion_id = str(best["run_id"])
    if len(challenger.texts) != len(gold):
        # A resumed job reads its encoded splits back from the cache, without the raw texts:
        # only the figures recorded in best.json can be compared then, and the reason says so.
        recorded = float(best.get("value", -1.0)) if best.get("metric") == METRIC else -1.0
        wins = own["micro_f1"] > recorded
        return {
            **out,
            "promote": wins,
            "champion": {"run_id": champion_id, "micro_f1": recorded},
            "reason": f"{challenger.run_id} {'beats' if wins else 'does not beat'} the recorded "
            f"{METRIC} of {champion_id} ({own['micro_f1']:.4f} against {recorded:.4f}); the champion "
            "was not re-scored, since a resumed run has no validation texts",
        }
    try:
        champion = Classifier.load(registry, champion_id)
    except RegistryError as exc:
        return {
            **out,
            "promote": True,
            "champion": {"run_id": champion_id},
            "reason": f"the current best {champion_id} cannot be loaded ({exc}), so it is replaced",
        }
    figures, changes = _rescore(champion, challenger, gold)
    out.update(champion={"run_id": champion_id, **figures}, changes=changes)
    wins = own["micro_f1"] > figures["micro_f1"]
    verdict = "beats" if wins else "does not beat"
    reason = (
        f"{challenger.run_id} {verdict} the current best {champion_id} on {out['compared_on']}: "
        f"micro-F1 {own['micro_f1']:.4f} against {figures['micro_f1']:.4f}"
    )
    if changes["notes"]:
        reason += "; " + "; ".join(changes["notes"])
    return {**out, "promote": wins, "reason": reason}


def _rescore(
    champion: Classifier, challenger: Challenger, gold: list[list[str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The champion's figures on the challenger's validation tweets, and what differs between
    the two runs (labels, data)."""
    union = list(challenger.labels) + [x for x in champion.labels if x not in set(challenger.labels)]
    y = binarize(gold, union)
    probs = champion.predict_proba(list(challenger.texts))
    picked = champion.predicted(probs)
    pred = binarize(picked, union).astype(np.int8)
    index = {name: i for i, name in enumerate(union)}
    top = np.array([index[champion.labels[j]] for j in probs.argmax(axis=1)], dtype=np.int64)
    figures = prediction_scores(y, pred, top)
    missing = sorted(set(challenger.labels) - set(champion.labels))
    extra = sorted(set(champion.labels) - set(challenger.labels))
    theirs = champion.metrics.get("lineage") or {}
    ours = challenger.lineage or {}
    notes = []
    if missing or extra:
        notes.append(
            f"the label set changed: {len(missing)} labels new to the challenger"
            f" (the champion misses them), {len(extra)} labels only the champion has"
        )
    data_changed = theirs.get("data_sha256") != ours.get("data_sha256")
    if data_changed:
        notes.append("the training data changed (data_sha256 differs)")
    changes = {
        "labels_new": missing,
        "labels_dropped": extra,
        "data_changed": data_changed,
        "champion_data_sha256": theirs.get("data_sha256"),
        "notes": notes,
    }
    return figures, changes


def promote_run(registry: Registry, run_id: str) -> dict[str, Any]:
    """Make ``run_id`` the best on purpose (``tweetdomains promote``), whatever it scores."""
    manifest = registry.manifest(run_id)
    value = 0.0
    if "metrics.json" in manifest["files"]:
        metrics = registry.json_artifact(run_id, "metrics.json", manifest)
        value = float(metrics.get(METRIC, 0.0))
    previous = registry.best()
    registry.promote(run_id, METRIC, value, force=True)
    return {
        "run_id": run_id,
        "promoted": True,
        "previous_best": previous.get("run_id") if previous else None,
        "reason": "promoted by hand (tweetdomains promote)",
    }
