"""The training job: data -> epochs of ``train_step`` -> thresholds on validation -> publish.

One entry point for a laptop CPU, one GPU and many: under ``torchrun`` (``WORLD_SIZE`` set)
each process joins a process group (gloo on CPU, NCCL on CUDA), trains on its share of every
epoch's batches through DistributedDataParallel, and only rank 0 writes checkpoints and
publishes. Every random draw is seeded from ``--seed``; batch order is a function of
(seed, epoch), and the torch/numpy/Python generator states go into each epoch's checkpoint,
so ``--resume`` continues a killed job to the very weights an uninterrupted one reaches.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tweetdomains.metrics import score, tune_thresholds
from tweetdomains.model import ModelConfig, RecurrentClassifier, bce_loss, build_model
from tweetdomains.predict import run_artifacts
from tweetdomains.registry import Registry, new_run_id
from tweetdomains.store import ObjectNotFound, ObjectStore, open_store
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer import checkpoint as ckpt
from tweetdomains_trainer import reports
from tweetdomains_trainer.data import (
    EncodedDataset,
    EncodedSplit,
    concat_splits,
    encode_dataset,
    eval_batches,
    load_dataset,
    train_batches,
)
from tweetdomains_trainer.recipes import RECIPES

log = logging.getLogger(__name__)

PROMOTION_METRIC = "val_micro_f1"
# Options that describe where and how verbosely a job runs, not what it trains: a resumed
# job takes these from its own command line, everything else from the checkpoint.
RUNTIME_OPTIONS = (
    "store",
    "device",
    "precision",
    "progress",
    "stop_after_epochs",
    "resume",
    "threads",
    "publish",
)


@dataclass
class TrainOptions:
    """Everything ``tweetdomains train`` accepts; defaults are the project's CPU recipe."""

    store: str = "var/store"
    data: list[str] | None = None
    label_field: str = "domains"
    recipe: str | None = None  # the preset the values came from (recorded; the values rule)
    vocab: str = "word"
    init_embeddings: str = "none"
    init_from: str | None = None  # a `tweetdomains pretrain` encoder: run id or "latest"
    encoder_lr_scale: float = 1.0
    freeze_epochs: int = 0
    model: str = "lstm"
    embedding_dim: int = 200
    hidden_dim: int = 128
    recurrent_layers: int = 1
    linear_layers: int = 2
    dropout: float = 0.3
    bidirectional: bool = True
    pooling: str = "mean_max"
    lr: float = 3e-3
    weight_decay: float = 0.0
    epochs: int = 12
    batch_size: int = 32
    patience: int = 3
    clip_norm: float = 1.0
    schedule: str = "plateau"
    pos_weight: str = "none"
    ema_decay: float = 0.0
    rank_loss_weight: float = 0.0
    refit: bool = False
    seed: int = 13
    min_count: int = 2
    max_vocab: int = 50_000
    max_tokens: int = 64
    test_percent: int = 20
    validation_percent: int = 10
    min_support: int = 5
    device: str = "auto"
    precision: str = "auto"
    dry_run: bool = False
    resume: bool = False
    run_id: str | None = None
    stop_after_epochs: int | None = None
    publish: bool = True
    progress: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.model in ("lstm", "rnn"), "--model must be lstm or rnn"),
            (self.recipe is None or self.recipe in RECIPES, f"--recipe must be one of {sorted(RECIPES)}"),
            (self.vocab in ("word", "wordpiece"), "--vocab must be word or wordpiece"),
            (self.init_embeddings in ("none", "minilm"), "--init-embeddings must be none or minilm"),
            (self.weight_decay >= 0, "--weight-decay must not be negative"),
            (0 < self.encoder_lr_scale <= 1, "--encoder-lr-scale must be in (0, 1]"),
            (self.freeze_epochs >= 0, "--freeze-epochs must not be negative"),
            (
                self.init_from is None or self.init_embeddings == "none",
                "--init-from already sets the embeddings: drop --init-embeddings",
            ),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.patience >= 1, "--patience must be at least 1"),
            (self.schedule in ("plateau", "none"), "--schedule must be plateau or none"),
            (self.pos_weight in ("none", "sqrt", "linear"), "--pos-weight must be none, sqrt or linear"),
            (0 <= self.ema_decay < 1, "--ema-decay must be in [0, 1)"),
            (self.rank_loss_weight >= 0, "--rank-loss-weight must not be negative"),
            (self.device in ("auto", "cpu", "cuda"), "--device must be auto, cpu or cuda"),
            (self.precision in ("auto", "bf16", "fp32"), "--precision must be auto, bf16 or fp32"),
            (0 <= self.test_percent < 100, "--test-percent must be in [0, 100)"),
            (0 < self.validation_percent < 100 - self.test_percent, "--validation-percent is out of range"),
            (self.min_count >= 1 and self.max_vocab >= 2, "--min-count/--max-vocab too small"),
            (self.max_tokens >= 1, "--max-tokens must be at least 1"),
            (self.stop_after_epochs is None or self.stop_after_epochs >= 1, "--stop-after-epochs >= 1"),
            (not self.resume or bool(self.run_id), "--resume needs --run-id"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for name in ("embedding_dim", "hidden_dim", "recurrent_layers", "linear_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")

    def model_config(self, vocab_size: int, num_labels: int) -> ModelConfig:
        return ModelConfig(
            kind=self.model,
            vocab_size=vocab_size,
            num_labels=num_labels,
            embedding_dim=self.embedding_dim,
            hidden_dim=self.hidden_dim,
            recurrent_layers=self.recurrent_layers,
            linear_layers=self.linear_layers,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
            pooling=self.pooling,
            max_tokens=self.max_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass
class TrainResult:
    """What a run produced; ``published`` is False for dry runs and stopped (resumable) jobs."""

    run_id: str
    metrics: dict[str, Any]
    model: RecurrentClassifier
    encoded: EncodedDataset
    thresholds: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    published: bool = False
    promoted: bool = False
    completed: bool = True

    def summary_line(self) -> str:
        """The JSON object the command prints last."""
        out: dict[str, Any] = {"run_id": self.run_id, "published": self.published, "promoted": self.promoted}
        if not self.completed:
            out["stopped_after_epoch"] = self.history[-1]["epoch"] if self.history else 0
        for key in (PROMOTION_METRIC, "micro_f1", "macro_f1", "p_at_1", "n", "scored_on", "epochs_run"):
            if key in self.metrics:
                out[key] = self.metrics[key]
        return json.dumps(out)


# ----------------------------------------------------------------------------- steps


def autocast(device: torch.device, precision: str = "auto") -> Any:
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); a no-op on CPU or fp32."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def train_step(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    device: torch.device,
    clip_norm: float = 1.0,
    precision: str = "auto",
) -> float:
    """One optimizer step on one batch; returns the batch loss."""
    ids, lengths, targets = batch
    ids, targets = ids.to(device, non_blocking=True), targets.to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):
        logits = model(ids, lengths)
    return optimizer_step(model, loss_fn(logits.float(), targets), optimizer, clip_norm)


def optimizer_step(
    model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer, clip_norm: float
) -> float:
    """Backward, clip the gradient norm (``clip_norm`` > 0), step; returns the loss."""
    loss.backward()
    if clip_norm > 0:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return float(loss.detach())


@torch.inference_mode()
def eval_step(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn: nn.Module,
    device: torch.device,
    precision: str = "auto",
) -> tuple[float, np.ndarray]:
    """Summed loss (over rows) and probabilities ``[b, labels]`` of one batch."""
    ids, lengths, targets = batch
    ids, targets = ids.to(device), targets.to(device)
    with autocast(device, precision):
        logits = model(ids, lengths).float()
    loss = float(loss_fn(logits, targets)) * len(ids)
    return loss, torch.sigmoid(logits).cpu().numpy()


def predict_split(
    model: nn.Module,
    split: EncodedSplit,
    loss_fn: nn.Module,
    device: torch.device,
    batch_size: int = 512,
    max_batches: int | None = None,
    precision: str = "auto",
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean loss, probabilities and targets of a split (rows in the split's order)."""
    model.eval()
    rows_done: list[np.ndarray] = []
    probs = np.zeros(split.labels.shape, dtype=np.float32)
    total = 0.0
    for i, rows in enumerate(eval_batches(split.lengths, batch_size)):
        if max_batches is not None and i >= max_batches:
            break
        loss, p = eval_step(model, split.batch(rows), loss_fn, device, precision)
        total += loss
        probs[rows] = p
        rows_done.append(rows)
    done = np.sort(np.concatenate(rows_done)) if rows_done else np.zeros(0, dtype=np.int64)
    return total / max(len(done), 1), probs[done], split.labels[done]


def fit_thresholds(
    validation_targets: np.ndarray, validation_probs: np.ndarray, min_support: int
) -> np.ndarray:
    """Per-domain decision thresholds, from validation predictions only (never test)."""
    return tune_thresholds(validation_targets, validation_probs, min_support=min_support)


# ----------------------------------------------------------------------------- set-up


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is available")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return torch.device("cuda", local_rank)


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job (world 1 without one)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )

    def start(self, device: torch.device) -> None:
        if self.world_size > 1 and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def shard(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """This rank's batches; every rank gets the same number, so collectives line up."""
        if self.world_size == 1:
            return batches
        per_rank = max(len(batches) // self.world_size, 1)
        return [batches[(self.rank + self.world_size * i) % len(batches)] for i in range(per_rank)]

    def agree(self, value: float, device: torch.device) -> float:
        """Rank 0's value on every rank: early stopping and the LR schedule decide as one."""
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.broadcast(tensor, src=0)
        return float(tensor.item())


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float = 0.0, encoder_lr_scale: float = 1.0
) -> torch.optim.Optimizer:
    """Adam without weight decay; with it, AdamW whose ``embedding.*`` group has no decay.

    ``encoder_lr_scale`` < 1 gives the embedding and recurrent layers a lower learning rate
    than the head (ULMFiT's discriminative rates: pre-trained layers move less). Fused where
    the build has it (one kernel for every parameter: a third off a small model's CPU step).
    """
    # Decay would pull the rows of wordpieces absent from a batch towards zero, erasing what
    # a pre-trained initialisation taught them; the rest of the model is decayed as usual.
    groups: dict[str, list[nn.Parameter]] = {"embedding": [], "recurrent": [], "head": []}
    for name, param in model.named_parameters():
        module = name.removeprefix("module.").split(".", 1)[0]
        groups[module if module in groups else "head"].append(param)
    settings = {
        "embedding": (lr * encoder_lr_scale, 0.0),
        "recurrent": (lr * encoder_lr_scale, weight_decay),
        "head": (lr, weight_decay),
    }
    param_groups = [
        {"params": params, "lr": settings[name][0], "weight_decay": settings[name][1]}
        for name, params in groups.items()
        if params
    ]
    optimizer_cls = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
    try:
        return optimizer_cls(param_groups, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # a device or build without the fused kernel
        return optimizer_cls(param_groups, lr=lr)


def set_encoder_trainable(model: RecurrentClassifier, trainable: bool) -> None:
    """Freeze or unfreeze the embedding and recurrent layers (gradual unfreezing: the head
    of a pre-trained encoder learns alone for ``--freeze-epochs`` epochs first)."""
    for module in (model.embedding, model.recurrent):
        module.requires_grad_(trainable)


class WeightAverage:
    """An exponential moving average of the weights, updated after every optimizer step.

    Checkpoint averaging in its streaming form (Polyak averaging): validation, early
    stopping and the published model all use the averaged weights, which sit in a flatter
    part of the loss surface than any single step's and vary less from seed to seed.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def load(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.state = {k: v.to(device) for k, v in state.items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = model.state_dict()
        averaged = [v for k, v in self.state.items() if v.is_floating_point()]
        latest = [current[k] for k, v in self.state.items() if v.is_floating_point()]
        torch._foreach_lerp_(averaged, latest, 1.0 - self.decay)

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own ones after it."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            yield
        finally:
            model.load_state_dict(own)


def pos_weights(targets: np.ndarray, mode: str) -> torch.Tensor | None:
    """Positive-class weights per label from train frequencies (``none``: unweighted)."""
    if mode == "none":
        return None
    positives = targets.sum(axis=0).astype(np.float64)
    ratio = (len(targets) - positives) / np.maximum(positives, 1.0)
    weights = np.sqrt(ratio) if mode == "sqrt" else ratio
    return torch.tensor(np.clip(weights, 1.0, 50.0), dtype=torch.float32)


def _unwrap(model: nn.Module) -> RecurrentClassifier:
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    assert isinstance(inner, RecurrentClassifier)
    return inner


def _prepare(
    options: TrainOptions, store: ObjectStore, say: Callable[[str], None], vocab: Vocabulary | None = None
) -> EncodedDataset:
    dataset = load_dataset(
        store, options.data, options.test_percent, options.validation_percent, options.label_field
    )
    say(f"dataset: {dataset.summary()}")
    if dataset.stats.records and dataset.stats.bad_lines:
        say(f"parse: {dataset.stats.summary()}")
    return encode_dataset(
        dataset,
        store,
        min_count=options.min_count,
        max_vocab=options.max_vocab,
        max_tokens=options.max_tokens,
        use_cache=not options.dry_run,
        vocab_kind=options.vocab,
        vocab=vocab,
    )


def init_embeddings(model: RecurrentClassifier, options: TrainOptions, encoded: EncodedDataset) -> int:
    """Apply ``--init-embeddings``; returns the rows copied. ValueError when MiniLM is missing."""
    if options.init_embeddings == "none":
        return 0
    from tweetdomains.minilm import PretrainedError, init_embeddings_from_minilm

    try:
        return init_embeddings_from_minilm(model, encoded.vocab)
    except PretrainedError as exc:
        raise ValueError(f"--init-embeddings minilm: {exc}") from None


# ----------------------------------------------------------------------------- the job


@dataclass
class _Phase:
    """One training phase's model (and its DDP wrapper), optimizer, schedule, loss and average."""

    base_model: RecurrentClassifier
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: nn.Module
    average: WeightAverage | None

    @classmethod
    def start(
        cls,
        options: TrainOptions,
        encoded: EncodedDataset,
        fit_split: EncodedSplit,
        encoder: Any,
        initialise: bool,
        dist: Distributed,
        device: torch.device,
        say: Callable[[str], None],
    ) -> _Phase:
        """A fresh model, initialised from ``encoder`` or MiniLM when ``initialise``."""
        base_model = build_model(options.model_config(len(encoded.vocab), len(encoded.labels)))
        if encoder is not None:
            from tweetdomains_trainer.pretrain import apply_pretrained

            apply_pretrained(base_model, encoder)
            say(f"encoder: embedding and {options.model} weights from pretrained run {encoder.run_id}")
        elif initialise:
            copied = init_embeddings(base_model, options, encoded)
            if copied:
                say(f"embeddings: {copied:,} of {len(encoded.vocab):,} rows from MiniLM")
        base_model = base_model.to(device)
        model: nn.Module = base_model
        if dist.world_size > 1:
            model = nn.parallel.DistributedDataParallel(
                base_model, device_ids=[device.index] if device.type == "cuda" else None
            )
        optimizer = make_optimizer(model, options.lr, options.weight_decay, options.encoder_lr_scale)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=1)
        weights = pos_weights(fit_split.labels, options.pos_weight)
        loss_fn = bce_loss(weights.to(device) if weights is not None else None, options.rank_loss_weight)
        average = WeightAverage(base_model, options.ema_decay) if options.ema_decay > 0 else None
        return cls(base_model, model, optimizer, scheduler, loss_fn, average)

    def run_epoch(
        self, options: TrainOptions, split: EncodedSplit, epoch: int, dist: Distributed, device: torch.device
    ) -> list[float]:
        """One pass over this rank's share of ``split``; the batch losses."""
        batches = dist.shard(
            train_batches(split.lengths, options.batch_size, np.random.default_rng([options.seed, epoch]))
        )
        if options.dry_run:
            batches = batches[:1]
        self.model.train()
        set_encoder_trainable(self.base_model, epoch >= options.freeze_epochs)
        losses: list[float] = []
        bar = tqdm(
            batches,
            desc=f"epoch {epoch + 1}/{options.epochs}",
            disable=not (options.progress and dist.is_main),
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        for i, rows in enumerate(bar):
            losses.append(
                train_step(
                    self.model,
                    split.batch(rows),
                    self.optimizer,
                    self.loss_fn,
                    device,
                    options.clip_norm,
                    options.precision,
                )
            )
            if self.average is not None:
                self.average.update(self.base_model)
            if i % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        return losses

    def adopt_average(self) -> None:
        """Load the averaged weights into the model for good (no-op without averaging)."""
        if self.average is not None:
            self.base_model.load_state_dict(self.average.state)


def train(
    options: TrainOptions,
    store: ObjectStore | None = None,
    encoded: EncodedDataset | None = None,
) -> TrainResult:
    """Train, tune thresholds on validation, score test, publish and promote (see module doc).

    ``encoded`` lets a sweep encode its data once for every row. Raises ValueError for
    unusable data or options.
    """
    dist = Distributed.from_env()
    store = store or open_store(options.store)
    say: Callable[[str], None] = (
        (lambda m: print(m, file=sys.stderr, flush=True)) if options.progress and dist.is_main else log.info
    )
    state: dict[str, Any] | None = None
    tensors: dict[str, torch.Tensor] = {}
    if options.resume:
        assert options.run_id
        tensors, state = ckpt.load_checkpoint(store, options.run_id)
        saved = TrainOptions.from_dict(state["options"])
        for name in RUNTIME_OPTIONS:
            setattr(saved, name, getattr(options, name))
        saved.run_id, saved.resume = options.run_id, True
        options = saved
        # The entry the checkpoint names is its data by definition (even under an older key
        # format); only a re-encoded dataset has to prove it is the same.
        encoded = _cached_dataset(store, state["cache_key"])
        if encoded is None and (encoded := _prepare(options, store, say)).cache_key != state["cache_key"]:
            raise ValueError(
                f"the data of run {options.run_id!r} changed since its checkpoint; cannot resume exactly"
            )
    elif options.run_id and not options.dry_run:
        if store.exists(f"models/{options.run_id}/manifest.json"):
            raise ValueError(f"run {options.run_id!r} is already published: choose another --run-id")
        if store.exists(ckpt.checkpoint_key(options.run_id)):
            raise ValueError(f"run {options.run_id!r} has a checkpoint: continue it with --resume")
    if options.threads:
        torch.set_num_threads(options.threads)
    run_id = options.run_id or new_run_id(options.model)
    if dist.world_size > 1 and options.freeze_epochs:
        raise ValueError("--freeze-epochs is not supported under torchrun (DDP fixes the trained parameters)")
    device = resolve_device(options.device, dist.local_rank)
    dist.start(device)
    seed_everything(options.seed)
    encoder = _pretrained_encoder(options, store) if state is None and options.init_from else None
    if encoded is None:
        encoded = _prepare(options, store, say, encoder.vocab if encoder else None)
    elif encoder is not None and encoded.vocab != encoder.vocab:
        raise ValueError(f"--init-from {options.init_from}: the data was encoded with another vocabulary")
    train_split, val_split = encoded.train, encoded.validation

    phase = _Phase.start(options, encoded, train_split, encoder, state is None, dist, device, say)
    base_model, optimizer, scheduler, loss_fn, average = (
        phase.base_model, phase.optimizer, phase.scheduler, phase.loss_fn, phase.average
    )  # fmt: skip

    start_epoch, best_metric, best_epoch, bad_epochs = 0, -math.inf, -1, 0
    history: list[dict[str, Any]] = []
    best_state = {k: v.detach().clone() for k, v in base_model.state_dict().items()}
    train_seconds = 0.0
    if state is not None:
        base_model.load_state_dict(ckpt.unprefixed("model", tensors))
        best_state = {k: v.to(device) for k, v in ckpt.unprefixed("best", tensors).items()}
        if average is not None:
            average.load(ckpt.unprefixed("ema", tensors), device)
        optimizer.load_state_dict(ckpt.optimizer_from_tensors(tensors, state["optimizer"]))
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(tensors, state["rng"])
        start_epoch, best_metric = state["epoch"], state["best_metric"]
        best_epoch, bad_epochs = state["best_epoch"], state["bad_epochs"]
        history, train_seconds = state["history"], state["train_seconds"]
        say(f"resuming run {run_id} after epoch {start_epoch}")

    say(
        f"run {run_id}: {options.model} on {device} (world {dist.world_size}), "
        f"{sum(p.numel() for p in base_model.parameters()):,} parameters, vocabulary {len(encoded.vocab):,}, "
        f"{len(encoded.labels)} labels"
    )
    completed = True
    for epoch in range(start_epoch, options.epochs):
        if bad_epochs >= options.patience:
            break
        started = time.perf_counter()
        losses = phase.run_epoch(options, train_split, epoch, dist, device)
        with average.swapped_in(base_model) if average is not None else nullcontext():
            val_loss, val_probs, val_targets = predict_split(
                base_model,
                val_split,
                loss_fn,
                device,
                max_batches=1 if options.dry_run else None,
                precision=options.precision,
            )
        val = score(val_targets, val_probs, encoded.labels, 0.5)
        metric = dist.agree(val["micro_f1"], device)
        if options.schedule == "plateau":
            scheduler.step(metric)
        if metric > best_metric:
            best_metric, best_epoch, bad_epochs = metric, epoch + 1, 0
            kept = average.state if average is not None else base_model.state_dict()
            best_state = {k: v.detach().clone() for k, v in kept.items()}
        else:
            bad_epochs += 1
        seconds = time.perf_counter() - started
        train_seconds += seconds
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(float(np.mean(losses)) if losses else 0.0, 5),
                "val_loss": round(val_loss, 5),
                "val_micro_f1": val["micro_f1"],
                "val_macro_f1": val["macro_f1"],
                "val_p_at_1": val["p_at_1"],
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(seconds, 2),
            }
        )
        h = history[-1]
        say(
            f"epoch {epoch + 1}/{options.epochs}: train loss {h['train_loss']:.4f}, val loss {val_loss:.4f}, "
            f"val micro-F1 {val['micro_f1']:.4f} macro-F1 {val['macro_f1']:.4f} P@1 {val['p_at_1']:.4f} "
            f"({seconds:.1f} s, {len(losses) * options.batch_size / seconds:,.0f} tweets/s)"
        )
        if options.dry_run:
            break
        if dist.is_main:
            progress = (epoch + 1, best_metric, best_epoch, bad_epochs, train_seconds)
            _save(
                store,
                run_id,
                options,
                encoded,
                base_model,
                best_state,
                optimizer,
                scheduler,
                history,
                progress,
                average.state if average is not None else None,
            )
        if options.stop_after_epochs is not None and epoch + 1 >= options.stop_after_epochs:
            completed = epoch + 1 >= options.epochs
            break

    if not completed:
        say(f"stopped after epoch {history[-1]['epoch']}; continue with --resume --run-id {run_id}")
        return TrainResult(
            run_id, {"history": history}, base_model, encoded, np.zeros(0), history, completed=False
        )
    base_model.load_state_dict(best_state)
    run = _Run(options, store, dist, device, run_id, encoded, say)
    if not options.refit or options.dry_run:
        return _finish(run, base_model, loss_fn, history, train_seconds, best_epoch)
    # Refit: the held-out figures and thresholds come from the model chosen on validation;
    # the published one is trained again, same seed and epoch count, on train + validation.
    _, val_probs, val_targets = predict_split(
        base_model, encoded.validation, loss_fn, device, precision=options.precision
    )
    started = time.perf_counter()
    both = concat_splits(train_split, val_split)
    seed_everything(options.seed)
    refit = _Phase.start(options, encoded, both, encoder, True, dist, device, lambda _: None)
    for epoch in range(best_epoch):
        refit.run_epoch(options, both, epoch, dist, device)
    refit.adopt_average()
    seconds = time.perf_counter() - started
    say(f"refit on train + validation ({len(both)} tweets, {best_epoch} epochs, {seconds:.1f} s)")
    return _finish(
        run,
        refit.base_model,
        loss_fn,
        history,
        train_seconds + seconds,
        best_epoch,
        held_out=(val_targets, val_probs),
    )


def _pretrained_encoder(options: TrainOptions, store: ObjectStore) -> Any:
    from tweetdomains_trainer.pretrain import MATCHING_FIELDS, load_pretrained

    encoder = load_pretrained(store, options.init_from or "latest")
    # Checked before the data is encoded, so a mismatch costs no encoding pass; the options
    # call the config's "kind" "model", and the vocabulary is the encoder's own.
    option_name = {"kind": "model"}
    shape = {f: getattr(options, option_name.get(f, f)) for f in MATCHING_FIELDS if f != "vocab_size"}
    differing = [f"{k} {encoder.config[k]!r} (not {v!r})" for k, v in shape.items() if encoder.config[k] != v]
    if differing:
        raise ValueError(
            f"--init-from {options.init_from}: the encoder has {', '.join(differing)}; "
            "train with the encoder's shape"
        )
    return encoder


def _cached_dataset(store: ObjectStore, key: str) -> EncodedDataset | None:
    try:
        return EncodedDataset.from_bytes(store.get(key))
    except ObjectNotFound:
        return None


def _save(
    store: ObjectStore,
    run_id: str,
    options: TrainOptions,
    encoded: EncodedDataset,
    model: RecurrentClassifier,
    best_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    history: list[dict[str, Any]],
    progress: tuple[int, float, int, int, float],
    ema_state: dict[str, torch.Tensor] | None = None,
) -> None:
    epoch, best_metric, best_epoch, bad_epochs, train_seconds = progress
    optim_tensors, optim_plain = ckpt.optimizer_to_tensors(optimizer.state_dict())
    rng_tensors, rng_plain = ckpt.rng_state()
    tensors = {
        **ckpt.prefixed("model", model.state_dict()),
        **ckpt.prefixed("best", best_state),
        **(ckpt.prefixed("ema", ema_state) if ema_state is not None else {}),
        **optim_tensors,
        **rng_tensors,
    }
    state = {
        "run_id": run_id,
        "epoch": epoch,
        "options": options.to_dict(),
        "cache_key": encoded.cache_key,
        "optimizer": optim_plain,
        "scheduler": scheduler.state_dict(),
        "rng": rng_plain,
        "history": history,
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "bad_epochs": bad_epochs,
        "train_seconds": train_seconds,
    }
    ckpt.save_checkpoint(store, run_id, tensors, state)


@dataclass
class _Run:
    options: TrainOptions
    store: ObjectStore
    dist: Distributed
    device: torch.device
    run_id: str
    encoded: EncodedDataset
    say: Callable[[str], None]


def _finish(
    run: _Run,
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
    options, store, dist, device, run_id, encoded, say = (
        run.options, run.store, run.dist, run.device, run.run_id, run.encoded, run.say
    )  # fmt: skip
    limit = 1 if options.dry_run else None
    if held_out is None:
        _, val_probs, val_targets = predict_split(
            model, encoded.validation, loss_fn, device, max_batches=limit, precision=options.precision
        )
    else:
        val_targets, val_probs = held_out
    thresholds = fit_thresholds(val_targets, val_probs, options.min_support)
    validation = score(val_targets, val_probs, encoded.labels, thresholds)
    metrics: dict[str, Any] = {PROMOTION_METRIC: validation["micro_f1"]}
    test: dict[str, Any] | None = None
    if len(encoded.test) and not options.dry_run:
        _, test_probs, test_targets = predict_split(
            model, encoded.test, loss_fn, device, precision=options.precision
        )
        test = score(test_targets, test_probs, encoded.labels, thresholds)
        test_05 = score(test_targets, test_probs, encoded.labels, 0.5)
        metrics["test_at_0_5"] = {k: test_05[k] for k in ("micro_f1", "macro_f1", "p_at_1", "n")}
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
            "world_size": dist.world_size,
            "data": {
                "train": len(encoded.train),
                "validation": len(encoded.validation),
                "test": len(encoded.test),
                "labels": len(encoded.labels),
                "vocabulary": len(encoded.vocab),
                "data_hash": encoded.data_hash,
            },
        }
    )
    for name, figures in (("validation", validation), ("test", test)):
        if figures:
            say(
                f"{name} (tuned thresholds): micro-F1 {figures['micro_f1']:.4f} "
                f"macro-F1 {figures['macro_f1']:.4f} P@1 {figures['p_at_1']:.4f}"
            )
    result = TrainResult(run_id, metrics, model, encoded, thresholds, history)
    if options.dry_run or not options.publish or not dist.is_main:
        return result
    registry = Registry(store)
    artifacts = run_artifacts(model, encoded.vocab, encoded.labels, thresholds, metrics, options.to_dict())
    artifacts["curves.png"] = reports.curves_png(history, f"run {run_id}")
    artifacts["per_domain_f1.png"] = reports.per_label_f1_png(
        scored["per_label"], f"per-domain F1 ({metrics['scored_on']}), run {run_id}"
    )
    promoted_guess = _would_promote(registry, metrics[PROMOTION_METRIC])
    report = reports.run_report(run_id, _summary(encoded), options.to_dict(), metrics, promoted_guess)
    artifacts["report.md"] = report.encode()
    registry.publish(run_id, artifacts)
    result.published = True
    result.promoted = registry.promote(run_id, PROMOTION_METRIC, metrics[PROMOTION_METRIC])
    for name in ("last.safetensors", "state.json"):
        store.delete(ckpt.checkpoint_key(run_id, name))
    say(f"published run {run_id}" + (" and promoted it to best" if result.promoted else " (best unchanged)"))
    return result


def _would_promote(registry: Registry, value: float) -> bool:
    best = registry.best()
    return best is None or (best.get("metric") == PROMOTION_METRIC and value > float(best.get("value", -1)))


def _summary(encoded: EncodedDataset) -> str:
    return (
        f"train {len(encoded.train)}, validation {len(encoded.validation)}, test {len(encoded.test)} tweets; "
        f"{len(encoded.labels)} labels; vocabulary {len(encoded.vocab)} (data hash {encoded.data_hash})"
    )
