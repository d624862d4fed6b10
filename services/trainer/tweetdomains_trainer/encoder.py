"""Pre-trained encoders in the store: publish, find, load and check, copy into a classifier.

Layout (the model registry's scheme under another prefix)::

    pretrained/<run-id>/encoder.safetensors, vocab.json, config.json, metrics.json, manifest.json
    pretrained/latest.json   {"run_id": ...}   (written last, in one atomic write)

Written by ``tweetdomains pretrain`` (:mod:`tweetdomains_trainer.pretrain`), read by
``tweetdomains train --init-from``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from tweetdomains.model import RecurrentClassifier
from tweetdomains.registry import Registry, RegistryError
from tweetdomains.store import ObjectStore, open_store
from tweetdomains.vocab import Vocabulary

PRETRAINED_PREFIX = "pretrained"
ENCODER = "encoder.safetensors"
# The classifier modules the language model trains; everything else (the head) it never sees.
ENCODER_MODULES = ("embedding", "recurrent")
# What a classifier must share with the encoder for the weights to fit (``config.json`` keys,
# named as in :class:`ModelConfig`).
MATCHING_FIELDS = ("kind", "embedding_dim", "hidden_dim", "recurrent_layers", "bidirectional", "vocab_size")


def encoder_registry(store: ObjectStore) -> Registry:
    """The registry of pre-trained encoders (``pretrained/``)."""
    return Registry(store, prefix=PRETRAINED_PREFIX)


@dataclass
class PretrainedEncoder:
    """A published encoder: the vocabulary it was trained on, its config and its tensors."""

    run_id: str
    vocab: Vocabulary
    config: dict[str, Any]
    state: dict[str, torch.Tensor]


def publish_encoder(
    store: ObjectStore,
    run_id: str,
    state: dict[str, torch.Tensor],
    vocab: Vocabulary,
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Write ``pretrained/<run_id>/``: the files, the manifest (registry scheme), then
    ``pretrained/latest.json``. Returns the manifest."""
    artifacts = {
        ENCODER: save_safetensors({k: v.detach().to("cpu").contiguous() for k, v in state.items()}),
        "vocab.json": vocab.to_json().encode(),
        "config.json": json.dumps(config, indent=2).encode(),
        "metrics.json": json.dumps(metrics, indent=2).encode(),
    }
    registry = encoder_registry(store)
    manifest = registry.publish(run_id, artifacts)
    registry.set_latest(run_id)
    return manifest


def resolve_pretrained(store: ObjectStore, ref: str) -> str:
    """The run id ``ref`` names: an id, or ``latest`` (the last published encoder)."""
    if ref != "latest":
        return ref
    try:
        latest = encoder_registry(store).latest()
    except RegistryError as exc:
        raise ValueError(str(exc)) from None
    if latest is None:
        raise ValueError(
            f"no pretrained encoder under {store.uri}/{PRETRAINED_PREFIX}/: run `tweetdomains pretrain` first"
        )
    return latest


def load_pretrained(store: ObjectStore | str, ref: str = "latest") -> PretrainedEncoder:
    """A published encoder by run id or ``latest``, every file checked against its manifest.

    ValueError for a missing run, an incomplete one (no manifest), a file whose bytes do not
    match the manifest, or files that do not agree with each other.
    """
    if isinstance(store, str):
        store = open_store(store)
    run_id = resolve_pretrained(store, ref)
    registry = encoder_registry(store)
    try:
        files = registry.artifacts(run_id)
    except RegistryError as exc:
        raise ValueError(f"pretrained encoder: {exc}") from None
    missing = sorted({ENCODER, "vocab.json", "config.json"} - set(files))
    if missing:
        raise ValueError(f"pretrained encoder {run_id!r} lacks {', '.join(missing)}")
    try:
        config = json.loads(files["config.json"])
        vocab = Vocabulary.from_json(files["vocab.json"])
        state = load_safetensors(files[ENCODER])
    except (ValueError, SafetensorError) as exc:
        raise ValueError(f"pretrained encoder {run_id!r} is unreadable: {exc}") from None
    absent = [name for name in (*MATCHING_FIELDS, "max_tokens") if name not in config]
    if absent:
        raise ValueError(f"config.json of pretrained encoder {run_id!r} lacks {', '.join(absent)}")
    foreign = sorted(k for k in state if k.split(".", 1)[0] not in ENCODER_MODULES)
    if foreign or "embedding.weight" not in state:
        raise ValueError(f"pretrained encoder {run_id!r} holds unexpected tensors {foreign[:3]}")
    rows, width = state["embedding.weight"].shape
    if not rows == len(vocab) == config["vocab_size"] or width != config["embedding_dim"]:
        raise ValueError(
            f"pretrained encoder {run_id!r}: embedding {rows}x{width}, vocabulary {len(vocab)}, "
            f"config {config['vocab_size']}x{config['embedding_dim']} do not agree"
        )
    return PretrainedEncoder(run_id, vocab, config, state)


def apply_pretrained(model: RecurrentClassifier, encoder: PretrainedEncoder) -> int:
    """Copy the encoder's ``embedding.*`` and ``recurrent.*`` tensors into a classifier.

    The classifier must have been built for the encoder's vocabulary and shape: ValueError
    naming the first field that differs otherwise. Returns the number of tensors copied.
    """
    ours = asdict(model.config)
    for name in MATCHING_FIELDS:
        if ours[name] != encoder.config[name]:
            hint = " (train with the encoder's vocabulary)" if name == "vocab_size" else ""
            raise ValueError(
                f"pretrained encoder {encoder.run_id!r} does not fit the classifier: {name} is "
                f"{encoder.config[name]!r} in the encoder, {ours[name]!r} in the classifier{hint}"
            )
    target = model.state_dict()
    expected = {k for k in target if k.split(".", 1)[0] in ENCODER_MODULES}
    if set(encoder.state) != expected:
        differing = sorted(set(encoder.state) ^ expected)
        raise ValueError(
            f"pretrained encoder {encoder.run_id!r}: tensors differ from the classifier's: {differing[:4]}"
        )
    for name, tensor in encoder.state.items():
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise ValueError(
                f"pretrained encoder {encoder.run_id!r}: {name} is {tuple(tensor.shape)}, "
                f"the classifier's {tuple(target[name].shape)}"
            )
    with torch.no_grad():
        for name, tensor in encoder.state.items():
            target[name].copy_(tensor)
    return len(encoder.state)
