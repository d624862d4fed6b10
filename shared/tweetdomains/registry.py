"""Model registry on the object store.

Layout (INTERFACE.md)::

    models/<run-id>/model.safetensors, config.json, vocab.json, labels.json,
                    thresholds.json, calibration.json (runs since calibration),
                    metrics.json, ..., manifest.json
    models/best.json   {"run_id": ..., "metric": ..., "value": ...}
    <prefix>/latest.json   {"run_id": ...}   (families that follow the last run, see set_latest)

``manifest.json`` is written last and lists every artifact with its SHA-256: a run without a
manifest is incomplete and never loaded, and an artifact whose bytes do not match is refused.
Promotion replaces ``best.json`` in one atomic write, only when the new run is better (the
trainer decides that on the new run's validation split, champion re-scored there, and promotes
with ``force``; see ``tweetdomains_trainer.promotion``).
The same scheme serves other artifact families under their own prefix
(``Registry(store, prefix="pretrained")``: the pre-trained encoders of ``tweetdomains pretrain``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from tweetdomains.store import ObjectNotFound, ObjectStore

MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"


class RegistryError(RuntimeError):
    """A run is missing, incomplete or does not match its manifest."""


def new_run_id(prefix: str = "run") -> str:
    """``<prefix>-YYYYmmdd-HHMMSS-<hex>``: sorts by time, unique across machines."""
    return f"{prefix}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _valid_run_id(run_id: str) -> str:
    if not run_id or "/" in run_id or run_id in (".", "..") or run_id in ("best.json", "latest.json"):
        raise RegistryError(f"invalid run id {run_id!r}")
    return run_id


class Registry:
    """Publish, promote and read model runs in an :class:`ObjectStore`.

    ``prefix`` is the folder the runs live under (``models``, the served classifiers, by default).
    """

    def __init__(self, store: ObjectStore, prefix: str = "models") -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.best_key = f"{self.prefix}/best.json"
        self.latest_key = f"{self.prefix}/latest.json"

    def manifest_key(self, run_id: str) -> str:
        """Where the run's manifest lives (its presence is what makes a run published)."""
        return f"{self.prefix}/{_valid_run_id(run_id)}/{MANIFEST}"

    def is_published(self, run_id: str) -> bool:
        """Whether ``run_id`` has a manifest, i.e. was completely published."""
        return self.store.exists(self.manifest_key(run_id))

    def publish(self, run_id: str, artifacts: dict[str, bytes]) -> dict[str, Any]:
        """Write every artifact, then the manifest that makes the run visible."""
        _valid_run_id(run_id)
        if MANIFEST in artifacts:
            raise RegistryError("the manifest is written by the registry")
        for name, data in artifacts.items():
            self.store.put(f"{self.prefix}/{run_id}/{name}", data)
        manifest = {
            "run_id": run_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(artifacts.items())},
        }
        self.store.put(self.manifest_key(run_id), json.dumps(manifest, indent=2).encode())
        return manifest

    def manifest(self, run_id: str) -> dict[str, Any]:
        """The run's manifest; :class:`RegistryError` if the run is absent or incomplete."""
        try:
            data = self.store.get(self.manifest_key(run_id))
        except ObjectNotFound:
            raise RegistryError(f"run {run_id!r} not found (or not completely published)") from None
        try:
            manifest = json.loads(data)
            files = manifest["files"]
            if not isinstance(files, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise RegistryError(f"run {run_id!r} has a malformed manifest") from None
        return dict(manifest)

    def artifact(self, run_id: str, name: str, manifest: dict[str, Any] | None = None) -> bytes:
        """One artifact's bytes, checked against the manifest's SHA-256."""
        manifest = manifest or self.manifest(run_id)
        expected = manifest["files"].get(name)
        if expected is None:
            raise RegistryError(f"run {run_id!r} has no artifact {name!r}")
        data = self.store.get(f"{self.prefix}/{run_id}/{name}")
        if hashlib.sha256(data).hexdigest() != expected:
            raise RegistryError(f"artifact {name!r} of run {run_id!r} does not match its manifest")
        return data

    def artifacts(self, run_id: str) -> dict[str, bytes]:
        """Every artifact the manifest lists, each checked; :class:`RegistryError` when the run is
        absent or incomplete, a file is missing from the store or does not match the manifest."""
        manifest = self.manifest(run_id)
        try:
            return {name: self.artifact(run_id, name, manifest) for name in manifest["files"]}
        except ObjectNotFound as exc:
            raise RegistryError(f"run {run_id!r} lacks {exc} that its manifest lists") from None

    def json_artifact(self, run_id: str, name: str, manifest: dict[str, Any] | None = None) -> Any:
        try:
            return json.loads(self.artifact(run_id, name, manifest))
        except ValueError:
            raise RegistryError(f"artifact {name!r} of run {run_id!r} is not valid JSON") from None

    def runs(self) -> list[str]:
        """Ids of completely published runs, oldest first."""
        folder, suffix = self.prefix + "/", "/" + MANIFEST
        return sorted(k[len(folder) : -len(suffix)] for k in self.store.list(folder) if k.endswith(suffix))

    def best(self) -> dict[str, Any] | None:
        """The content of ``<prefix>/best.json``, or None before any promotion."""
        try:
            data = self.store.get(self.best_key)
        except ObjectNotFound:
            return None
        try:
            best = json.loads(data)
            if not isinstance(best, dict) or not isinstance(best.get("run_id"), str):
                raise ValueError
        except ValueError:
            raise RegistryError(f"{self.best_key} is malformed") from None
        return best

    def set_latest(self, run_id: str) -> None:
        """Point ``<prefix>/latest.json`` at a published run, in one atomic write."""
        self.manifest(run_id)  # only complete runs are pointed at
        self.store.put(self.latest_key, json.dumps({"run_id": run_id}).encode())

    def latest(self) -> str | None:
        """The run ``<prefix>/latest.json`` names, or None before any; RegistryError if malformed."""
        try:
            data = self.store.get(self.latest_key)
        except ObjectNotFound:
            return None
        try:
            latest = json.loads(data)
        except ValueError:
            latest = None
        if not isinstance(latest, dict) or not isinstance(latest.get("run_id"), str):
            raise RegistryError(f"{self.latest_key} is malformed")
        return str(latest["run_id"])

    def resolve(self, run_ref: str) -> str:
        """A run id from an id or ``best``."""
        if run_ref != "best":
            return _valid_run_id(run_ref)
        best = self.best()
        if best is None:
            raise RegistryError("no model has been promoted yet: train one first")
        return str(best["run_id"])

    def promote(self, run_id: str, metric: str, value: float, force: bool = False) -> bool:
        """Make ``run_id`` the best if its ``metric`` beats the current best's (or ``force``).

        Returns whether it was promoted. A current best measured on another metric is
        replaced only with ``force``, since the two figures do not compare.
        """
        self.manifest(run_id)  # only complete runs are promoted
        current = self.best()
        if not force and current is not None:
            if current.get("metric") != metric:
                return False
            if not float(value) > float(current.get("value", float("-inf"))):
                return False
        record = {
            "run_id": run_id,
            "metric": metric,
            "value": float(value),
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.store.put(self.best_key, json.dumps(record, indent=2).encode())
        return True
