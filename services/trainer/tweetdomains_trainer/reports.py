"""Charts and Markdown for runs, evaluations and sweeps (matplotlib, headless)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def curves_png(history: Sequence[dict[str, Any]], title: str) -> bytes:
    """Train and validation loss, and validation micro/macro-F1, per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    left.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    left.set(xlabel="epoch", ylabel="BCE loss", title="loss")
    left.legend()
    right.plot(epochs, [h["val_micro_f1"] for h in history], marker="o", label="micro-F1")
    right.plot(epochs, [h["val_macro_f1"] for h in history], marker="o", label="macro-F1")
    right.plot(epochs, [h["val_p_at_1"] for h in history], marker="o", label="P@1")
    right.set(xlabel="epoch", ylim=(0, 1), title="validation (0.5 rule)")
    right.legend()
    fig.suptitle(title)
    return _png(fig)


def per_label_f1_png(per_label: dict[str, dict[str, Any]], title: str, limit: int = 40) -> bytes:
    """Horizontal bars of F1 for the labels with the most support."""
    plt = _pyplot()
    rows = sorted(per_label.items(), key=lambda kv: (-kv[1]["support"], kv[0]))
    rows = [r for r in rows if r[1]["support"] > 0][:limit]
    names = [f"{name} ({stats['support']})" for name, stats in rows]
    values = [stats["f1"] for _, stats in rows]
    fig, ax = plt.subplots(figsize=(7, 0.25 * max(len(rows), 4) + 1))
    ax.barh(range(len(rows)), values, color="#3b7dd8")
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="F1", title=title)
    return _png(fig)


def table_markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 1 else f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def table_png(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str) -> bytes:
    """The table as an image, for a report that is looked at rather than read."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(2 + 1.3 * len(headers), 22), 0.9 + 0.32 * (len(rows) + 1)))
    ax.axis("off")
    text = [[f"{v:.4f}" if isinstance(v, float) and abs(v) < 1 else str(v) for v in row] for row in rows]
    table = ax.table(cellText=text or [["" for _ in headers]], colLabels=list(headers), loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(headers))))
    ax.set_title(title)
    return _png(fig)


def metrics_lines(name: str, metrics: dict[str, Any]) -> list[str]:
    return [
        f"- **{name}** (n={metrics['n']}): micro-F1 {metrics['micro_f1']:.4f}, "
        f"macro-F1 {metrics['macro_f1']:.4f}, P@1 {metrics['p_at_1']:.4f}"
    ]


def per_label_markdown(per_label: dict[str, dict[str, Any]]) -> str:
    rows = sorted(per_label.items(), key=lambda kv: (-kv[1]["support"], kv[0]))
    return table_markdown(
        ["domain", "precision", "recall", "F1", "support"],
        [[n, s["precision"], s["recall"], s["f1"], s["support"]] for n, s in rows],
    )


def _promotion_lines(promotion: dict[str, Any] | None) -> list[str]:
    if not promotion:
        return []
    return ["", f"Why: {promotion['reason']}."]


def _calibration_lines(calibration: dict[str, Any] | None) -> list[str]:
    """Expected calibration error (15 bins, all (tweet, domain) pairs) before and after."""
    if not calibration:
        return []
    lines = ["", f"Calibration ({calibration['method']}, fitted on validation): expected calibration error"]
    for split in ("validation", "test"):
        figures = calibration.get(split)
        if figures:
            before, after = figures["uncalibrated"], figures["calibrated"]
            lines.append(
                f"- {split}: {before['ece']:.4f} -> {after['ece']:.4f} "
                f"(per-domain mean {before['ece_per_domain_mean']:.4f} -> {after['ece_per_domain_mean']:.4f})"
            )
    return lines


def run_report(
    run_id: str, summary: str, options: dict[str, Any], metrics: dict[str, Any], promoted: bool
) -> str:
    """``report.md`` of a run: data, settings, figures, curves and per-domain scores."""
    lines = [f"# Run {run_id}", "", f"Data: {summary}", ""]
    lines += ["## Results (tuned thresholds)", ""]
    lines += metrics_lines("validation", metrics["validation"])
    if metrics.get("test"):
        lines += metrics_lines("test", metrics["test"])
    lines += [
        "",
        f"Promoted to best: {'yes' if promoted else 'no'} "
        f"(val_micro_f1 {metrics['val_micro_f1']:.4f}); epochs run {metrics['epochs_run']}, "
        f"best epoch {metrics['best_epoch']}, {metrics['train_seconds']:.1f} s.",
        *_promotion_lines(metrics.get("promotion")),
        *_calibration_lines(metrics.get("calibration")),
        "",
        "![training curves](curves.png)",
        "",
        "![per-domain F1](per_domain_f1.png)",
        "",
        "## Epochs",
        "",
        table_markdown(
            ["epoch", "train loss", "val loss", "val micro-F1", "val macro-F1", "val P@1", "lr", "seconds"],
            [
                [
                    h["epoch"],
                    h["train_loss"],
                    h["val_loss"],
                    h["val_micro_f1"],
                    h["val_macro_f1"],
                    h["val_p_at_1"],
                    h["lr"],
                    round(h["seconds"], 1),
                ]
                for h in metrics["history"]
            ],
        ),
        "## Settings",
        "",
        table_markdown(["option", "value"], [[k, v] for k, v in sorted(options.items())]),
    ]
    scored = metrics.get("test") or metrics["validation"]
    lines += [
        f"## Per domain ({'test' if metrics.get('test') else 'validation'} split)",
        "",
        per_label_markdown(scored["per_label"]),
    ]
    return "\n".join(lines)
