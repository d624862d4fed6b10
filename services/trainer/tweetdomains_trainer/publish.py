"""The end of a run: thresholds from validation, scores on validation and test, the artifacts
(weights, config, vocabulary, labels, thresholds, metrics with lineage, plots, report), then
publishing through the registry and promotion when the run beats the current best."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tweetdomains.calibration import Calibration, calibration_error
from tweetdomains.metrics import score
from tweetdomains.model import RecurrentClassifier
from tweetdomains.predict import run_artifacts
from tweetdomains.registry import Registry
from tweetdomains.store import ObjectStore
from tweetdomains_trainer import reports
from tweetdomains_trainer.calibration import fit_calibration
from tweetdomains_trainer.checkpoint import delete_checkpoint
from tweetdomains_trainer.data import EncodedDataset
from tweetdomains_trainer.distributed import Distributed
from tweetdomains_trainer.lineage import run_lineage
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.promotion import Challenger, decide_promotion
from tweetdomains_trainer.steps import predict_split

PROMOTION_METRIC = "val_micro_f1"


@dataclass
class TrainResult:
    """What a run produced; ``published`` is False for dry runs and stopped (resumable) jobs."""

    run_id: str
    metrics: dict[str, Any]
    model: RecurrentClassifier
    encoded: EncodedDataset
    thresholds: np.ndarray
    calibration: Calibration | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    published: bool = False
    promoted: bool = False
    completed: bool = True

    def summary_line(self) -> str:
        """The JSON object the command prints last."""
        out: dict[str, Any] = {"run_id": self.run_id, "published": self.published, "promoted": self.promoted}
        if not self.completed:
            out["stopped_after_epoch"] = self.history[-1]["epoch"] if self.history else 0
        reason = (self.metrics.get("promotion") or {}).get("reason")
        if reason:
            out["promotion"] = reason
        for key in (PROMOTION_METRIC, "micro_f1", "macro_f1", "p_at_1", "n", "scored_on", "epochs_run"):
            if key in self.metrics:
                out[key] = self.metrics[key]
        return json.dumps(out)


@dataclass
class RunContext:
    """What the end of a run needs to know about the job."""

    options: TrainOptions
    store: ObjectStore
    dist: Distributed
    device: torch.device
    run_id: str
    encoded: EncodedDataset
    progress: Progress
    # ``encoded`` with validation and test cut to the rows scored (:mod:`.scoring`); None: all.
    scored: EncodedDataset | None = None


def finish(
    run: RunContext,
    model: RecurrentClassifier,
    loss_fn: nn.Module,
    history: list[dict[str, Any]],
    train_seconds: float,
    best_epoch: int,
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """Thresholds from validation, scores on validation and test, then publish and promote.

    ``held_out`` (targets, probabilities) are validation predictions of the model chosen
    before a refit, which has seen the validation rows and so cannot be scored on them.
    """
    options, encoded, device = run.options, run.encoded, run.device
    scored_data = run.scored if run.scored is not None else encoded
    if held_out is None:
        limit = 1 if options.dry_run else None
        _, val_probs, val_targets = predict_split(
            model, scored_data.validation, loss_fn, device, max_batches=limit, precision=options.precision
        )
    else:
        val_targets, val_probs = held_out
    # Calibration and thresholds are both fitted on validation; the thresholds on the
    # calibrated scores, capped at 0.5 as the served rule is (tweetdomains.predict).
    calibration, thresholds, raw_thresholds = fit_calibration(val_targets, val_probs, options.min_support)
    raw_val_probs, val_probs = val_probs, calibration.apply(val_probs)
    validation = score(val_targets, val_probs, encoded.labels, thresholds)
    metrics: dict[str, Any] = {PROMOTION_METRIC: validation["micro_f1"]}
    calibration_report: dict[str, Any] = {
        "method": calibration.method,
        "fitted_on": "validation",
        "uncalibrated_thresholds": [round(float(t), 4) for t in raw_thresholds],
        "validation": {
            "uncalibrated": calibration_error(val_targets, raw_val_probs, encoded.labels),
            "calibrated": calibration_error(val_targets, val_probs, encoded.labels),
        },
    }
    test: dict[str, Any] | None = None
    if len(encoded.test) and not options.dry_run:
        _, raw_test_probs, test_targets = predict_split(
            model, scored_data.test, loss_fn, device, precision=options.precision
        )
        test_probs = calibration.apply(raw_test_probs)
        test = score(test_targets, test_probs, encoded.labels, thresholds)
        test_05 = score(test_targets, test_probs, encoded.labels, 0.5)
        metrics["test_at_0_5"] = {k: test_05[k] for k in ("micro_f1", "macro_f1", "p_at_1", "n")}
        raw = score(test_targets, raw_test_probs, encoded.labels, raw_thresholds)
        calibration_report["test"] = {
            "uncalibrated": {
                **calibration_error(test_targets, raw_test_probs, encoded.labels),
                **{k: raw[k] for k in ("micro_f1", "macro_f1", "p_at_1")},
            },
            "calibrated": {
                **calibration_error(test_targets, test_probs, encoded.labels),
                **{k: test[k] for k in ("micro_f1", "macro_f1", "p_at_1")},
            },
        }
    metrics["calibration"] = calibration_report
    scored = test or validation
    metrics.update({k: scored[k] for k in ("micro_f1", "macro_f1", "p_at_1", "n")})
    metrics.update(
        {
            "scored_on": "test" if test else "validation",
            "validation": validation,
            "test": test,
            "history": history,
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "train_seconds": round(train_seconds, 2),
            "device": str(device),
            "world_size": run.dist.world_size,
            "data": {
                "train": len(encoded.train),
                "validation": len(encoded.validation),
                "test": len(encoded.test),
                "validation_scored": len(scored_data.validation),
                "test_scored": len(scored_data.test),
                "labels": len(encoded.labels),
                "vocabulary": len(encoded.vocab),
                "data_hash": encoded.data_hash,
            },
            "lineage": run_lineage(encoded.lineage, options.recipe),
        }
    )
    for name, figures in (("validation", validation), ("test", test)):
        if figures:
            run.progress.say(
                f"{name} (tuned thresholds): micro-F1 {figures['micro_f1']:.4f} "
                f"macro-F1 {figures['macro_f1']:.4f} P@1 {figures['p_at_1']:.4f}"
            )
    result = TrainResult(run.run_id, metrics, model, encoded, thresholds, calibration, history)
    if options.dry_run or not options.publish or not run.dist.is_main:
        return result
    publish(run, result, scored, (val_targets, val_probs))
    return result


def publish(
    run: RunContext, result: TrainResult, scored: dict[str, Any], validation: tuple[np.ndarray, np.ndarray]
) -> None:
    """Write the run's artifacts through the registry, promote it if it beats the current best
    on its validation split (:mod:`tweetdomains_trainer.promotion`), drop its checkpoint."""
    run_id, metrics, options = run.run_id, result.metrics, run.options
    registry = Registry(run.store)
    decision = decide_promotion(
        registry,
        Challenger(
            run_id,
            run.encoded.labels,
            (run.scored if run.scored is not None else run.encoded).validation_texts,
            validation[0],
            validation[1],
            result.thresholds,
            metrics.get("lineage") or {},
        ),
    )
    promote = bool(decision.pop("promote"))
    metrics["promotion"] = {"promoted": promote, **decision}
    run.progress.say(f"promotion: {decision['reason']}")
    artifacts = run_artifacts(
        result.model,
        run.encoded.vocab,
        run.encoded.labels,
        result.thresholds,
        metrics,
        options.to_dict(),
        result.calibration,
    )
    artifacts["curves.png"] = reports.curves_png(result.history, f"run {run_id}")
    artifacts["per_domain_f1.png"] = reports.per_label_f1_png(
        scored["per_label"], f"per-domain F1 ({metrics['scored_on']}), run {run_id}"
    )
    report = reports.run_report(run_id, _summary(run.encoded), options.to_dict(), metrics, promote)
    artifacts["report.md"] = report.encode()
    registry.publish(run_id, artifacts)
    result.published = True
    if promote:
        result.promoted = registry.promote(run_id, PROMOTION_METRIC, metrics[PROMOTION_METRIC], force=True)
    delete_checkpoint(run.store, run_id)
    run.progress.say(
        f"published run {run_id}" + (" and promoted it to best" if result.promoted else " (best unchanged)")
    )


def _summary(encoded: EncodedDataset) -> str:
    return (
        f"train {len(encoded.train)}, validation {len(encoded.validation)}, test {len(encoded.test)} tweets; "
        f"{len(encoded.labels)} labels; vocabulary {len(encoded.vocab)} (data hash {encoded.data_hash})"
    )
