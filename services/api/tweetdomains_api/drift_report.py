"""``tweetdomains drift``: a day of collected raw batches against the served run's training
label distribution; prints the domains whose share moved most."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from tweetdomains.codecs import ParseStats, read_jsonl_bytes
from tweetdomains.dataset import RAW_PREFIX
from tweetdomains.registry import Registry
from tweetdomains.store import ObjectStore
from tweetdomains_api.drift import training_shares

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class DriftReport:
    run_id: str
    day: str
    batches: int
    records: int
    rows: list[tuple[str, float, float]]  # domain, training share, collected share: most moved first


def latest_day(store: ObjectStore) -> str | None:
    """``YYYY-MM-DD`` of the newest raw batch, from its key ``raw/YYYY/MM/DD/HH/...``."""
    days = {"-".join(key.split("/")[1:4]) for key in store.list(RAW_PREFIX) if key.count("/") >= 4}
    days = {d for d in days if _DAY.match(d)}
    return max(days) if days else None


def collected_counts(store: ObjectStore, day: str) -> tuple[Counter[str], int, int]:
    """Domain counts, records and batches of one day's raw batches."""
    prefix = f"{RAW_PREFIX}{day.replace('-', '/')}/"
    counts: Counter[str] = Counter()
    records = batches = 0
    stats = ParseStats()
    for key in store.list(prefix):
        if not key.endswith((".jsonl.gz", ".jsonl")):
            continue
        batches += 1
        for record in read_jsonl_bytes(store.get(key), stats):
            records += 1
            counts.update(set(record.domains))
    return counts, records, batches


def drift_report(store: ObjectStore, run: str = "best", day: str | None = None) -> DriftReport:
    """Compare; ``ValueError`` with a sentence when there is nothing to compare."""
    registry = Registry(store)
    run_id = registry.resolve(run)
    metrics = registry.json_artifact(run_id, "metrics.json", registry.manifest(run_id))
    trained = training_shares(metrics if isinstance(metrics, dict) else {})
    if not trained:
        raise ValueError(
            f"run {run_id} records no training label distribution (lineage.label_counts): "
            "it was published before lineage was recorded"
        )
    if day is not None and not _DAY.match(day):
        raise ValueError(f"--day {day!r}: expected YYYY-MM-DD")
    day = day or latest_day(store)
    if day is None:
        raise ValueError(f"no collected batches under {RAW_PREFIX} in this store")
    counts, records, batches = collected_counts(store, day)
    if records == 0:
        raise ValueError(f"no collected records on {day}")
    collected = {domain: n / records for domain, n in counts.items()}
    domains = set(trained) | set(collected)
    rows = sorted(
        ((d, trained.get(d, 0.0), collected.get(d, 0.0)) for d in domains),
        key=lambda row: (-abs(row[2] - row[1]), row[0]),
    )
    return DriftReport(run_id, day, batches, records, rows)


def format_report(report: DriftReport, top: int) -> str:
    lines = [
        f"run {report.run_id} against {report.records} records in {report.batches} batches of {report.day}",
        f"{'domain':32} {'training':>9} {'collected':>9} {'change':>8}",
    ]
    for domain, trained, collected in report.rows[:top]:
        change = 100 * (collected - trained)
        lines.append(f"{domain[:32]:32} {100 * trained:8.1f}% {100 * collected:8.1f}% {change:+7.1f}pp")
    return "\n".join(lines)
