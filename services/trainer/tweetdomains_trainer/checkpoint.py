"""Per-epoch training checkpoints in the store, with nothing that unpickles code.

A job's whole state after an epoch is one :class:`TrainState`. On the store,
``checkpoints/<run-id>/last.safetensors`` holds every tensor needed to continue: the model,
the best epoch's model, the weight average, the optimizer's moments and the torch RNG states.
Everything else (options, epoch, history, scheduler, early-stopping counters, numpy and
Python RNG states, lineage) is JSON, stored inside the same file's safetensors metadata so
that one atomic write holds a consistent state; ``state.json`` beside it is the same JSON,
for people and tools.
"""

from __future__ import annotations

import json
import math
import random
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from tweetdomains.store import ObjectNotFound, ObjectStore

CHECKPOINT_PREFIX = "checkpoints/"
FILES = ("last.safetensors", "state.json")


@dataclass
class TrainState:
    """Where a training job stands after an epoch: what :func:`save_checkpoint` writes.

    ``model``, ``best`` and ``average`` are state dicts (the current weights, the best
    epoch's, the weight average's when there is one); ``optimizer`` and ``scheduler`` their
    ``state_dict()``. ``rng`` is filled by :func:`load_checkpoint` (tensors, plain) and
    restored with :func:`set_rng_state`; saving captures the generators as they are.

    Mid-epoch (sharded data, ``--checkpoint-steps``/``--stop-after-steps``), ``epoch`` is the
    epoch under way and ``step`` the batches of it already trained (a
    :class:`~tweetdomains_trainer.stream.StreamPosition`: the stream replays its order from
    the seed), with ``epoch_losses`` their losses for the epoch's mean; at an epoch's end
    ``step`` is 0.
    """

    run_id: str
    options: dict[str, Any]
    cache_key: str
    epoch: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    train_seconds: float = 0.0
    step: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    lineage: dict[str, Any] | None = None
    model: dict[str, torch.Tensor] = field(default_factory=dict)
    best: dict[str, torch.Tensor] = field(default_factory=dict)
    average: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    rng: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None


def checkpoint_key(run_id: str, name: str = "last.safetensors") -> str:
    return f"{CHECKPOINT_PREFIX}{run_id}/{name}"


def optimizer_to_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        plain[str(index)] = {}
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{slot}"] = value.detach().to("cpu").contiguous()
            else:
                plain[str(index)][slot] = value
    return tensors, {"state": plain, "param_groups": state["param_groups"]}


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_tensors`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain["state"].items()}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, slot = name.split(".", 2)
            state.setdefault(int(index), {})[slot] = tensor
    return {"state": state, "param_groups": plain["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every random generator training touches: torch (CPU and CUDA) as tensors, numpy and
    Python's as JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    plain = {
        "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(store: ObjectStore, state: TrainState) -> None:
    """Write ``last.safetensors`` (tensors + state as metadata) atomically, then ``state.json``."""
    optim_tensors, optim_plain = optimizer_to_tensors(state.optimizer)
    rng_tensors, rng_plain = rng_state()
    tensors = {
        **prefixed("model", state.model),
        **prefixed("best", state.best),
        **(prefixed("ema", state.average) if state.average is not None else {}),
        **optim_tensors,
        **rng_tensors,
    }
    plain = {
        "run_id": state.run_id,
        "epoch": state.epoch,
        "options": state.options,
        "cache_key": state.cache_key,
        "optimizer": optim_plain,
        "scheduler": state.scheduler,
        "rng": rng_plain,
        "history": state.history,
        "best_metric": state.best_metric,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "train_seconds": state.train_seconds,
        "position": {"epoch": state.epoch, "step": state.step},
        "epoch_losses": state.epoch_losses,
        "lineage": state.lineage,
    }
    text = json.dumps(plain, sort_keys=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    store.put(checkpoint_key(state.run_id), save_safetensors(cpu, metadata={"state": text}))
    store.put(
        checkpoint_key(state.run_id, "state.json"), json.dumps(plain, indent=2, sort_keys=True).encode()
    )


def _metadata(data: bytes) -> dict[str, str]:
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_size])
    return dict(header.get("__metadata__") or {})


def load_checkpoint(store: ObjectStore, run_id: str) -> TrainState:
    """The run's last checkpoint; ValueError when there is none or it is damaged."""
    try:
        data = store.get(checkpoint_key(run_id))
    except ObjectNotFound:
        raise ValueError(f"no checkpoint for run {run_id!r} in {store.uri}: nothing to resume") from None
    try:
        plain = json.loads(_metadata(data)["state"])
        tensors = load_safetensors(data)
        average = unprefixed("ema", tensors)
        return TrainState(
            run_id=plain["run_id"],
            options=plain["options"],
            cache_key=plain["cache_key"],
            epoch=plain["epoch"],
            best_metric=plain["best_metric"],
            best_epoch=plain["best_epoch"],
            bad_epochs=plain["bad_epochs"],
            train_seconds=plain["train_seconds"],
            step=int((plain.get("position") or {}).get("step", 0)),
            epoch_losses=[float(x) for x in plain.get("epoch_losses", [])],
            history=plain["history"],
            lineage=plain.get("lineage"),
            model=unprefixed("model", tensors),
            best=unprefixed("best", tensors),
            average=average or None,
            optimizer=optimizer_from_tensors(tensors, plain["optimizer"]),
            scheduler=plain["scheduler"],
            rng=({k: v for k, v in tensors.items() if k.startswith("rng.")}, plain["rng"]),
        )
    except (KeyError, ValueError, struct.error) as exc:
        raise ValueError(f"checkpoint of run {run_id!r} is damaged: {exc}") from exc


def delete_checkpoint(store: ObjectStore, run_id: str) -> None:
    """Remove the run's checkpoint files (once it is published)."""
    for name in FILES:
        store.delete(checkpoint_key(run_id, name))


def prefixed(prefix: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state_dict.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
