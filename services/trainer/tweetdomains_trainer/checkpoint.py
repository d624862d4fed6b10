"""Per-epoch training checkpoints in the store, with nothing that unpickles code.

``checkpoints/<run-id>/last.safetensors`` holds every tensor needed to continue: the model,
the best epoch's model, the optimizer's moments and the torch RNG states. Everything else
(options, epoch, history, scheduler, early-stopping counters, numpy and Python RNG states)
is JSON, stored inside the same file's safetensors metadata so that one atomic write holds
a consistent state; ``state.json`` beside it is the same JSON, for people and tools.
"""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from tweetdomains.store import ObjectNotFound, ObjectStore

CHECKPOINT_PREFIX = "checkpoints/"


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


def save_checkpoint(
    store: ObjectStore, run_id: str, tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> None:
    """Write ``last.safetensors`` (tensors + state as metadata) atomically, then ``state.json``."""
    text = json.dumps(state, sort_keys=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    store.put(checkpoint_key(run_id), save_safetensors(cpu, metadata={"state": text}))
    store.put(checkpoint_key(run_id, "state.json"), json.dumps(state, indent=2, sort_keys=True).encode())


def _metadata(data: bytes) -> dict[str, str]:
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_size])
    return dict(header.get("__metadata__") or {})


def load_checkpoint(store: ObjectStore, run_id: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and state of the run's last checkpoint; ValueError when there is none."""
    try:
        data = store.get(checkpoint_key(run_id))
    except ObjectNotFound:
        raise ValueError(f"no checkpoint for run {run_id!r} in {store.uri}: nothing to resume") from None
    try:
        state = json.loads(_metadata(data)["state"])
        tensors = load_safetensors(data)
    except (KeyError, ValueError, struct.error) as exc:
        raise ValueError(f"checkpoint of run {run_id!r} is damaged: {exc}") from exc
    return tensors, state


def prefixed(prefix: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state_dict.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
