"""One optimizer step, one evaluation pass, and what they need: device, seeds, optimizer, loss weights.

Plain functions with explicit arguments, shared by the classifier's training job and the
language-model pre-training.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from tweetdomains.metrics import tune_thresholds
from tweetdomains.model import RecurrentClassifier
from tweetdomains_trainer.data import EncodedSplit, eval_batches


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
    if len(done) == len(split):  # every row (not a dry run's first batches): no copies
        return total / max(len(done), 1), probs, split.labels
    return total / max(len(done), 1), probs[done], split.labels[done]


def fit_thresholds(
    validation_targets: np.ndarray, validation_probs: np.ndarray, min_support: int, ceiling: float = 0.95
) -> np.ndarray:
    """Per-domain decision thresholds, from validation predictions only (never test)."""
    return tune_thresholds(validation_targets, validation_probs, min_support=min_support, ceiling=ceiling)


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


def pos_weights(positives: np.ndarray, rows: int, mode: str) -> torch.Tensor | None:
    """Positive-class weights per label from train frequencies: ``positives`` per label of
    ``rows`` train rows (``none``: unweighted)."""
    if mode == "none":
        return None
    positives = positives.astype(np.float64)
    ratio = (rows - positives) / np.maximum(positives, 1.0)
    weights = np.sqrt(ratio) if mode == "sqrt" else ratio
    return torch.tensor(np.clip(weights, 1.0, 50.0), dtype=torch.float32)


def prior_logits(positives: np.ndarray, rows: int, weights: torch.Tensor | None) -> torch.Tensor:
    """Each label's best constant logit under (weighted) BCE: log(w * p / (1 - p)), with p its
    train frequency (smoothed by half a tweet) and w its positive weight.

    A head whose bias starts here begins at the label's prior instead of 0.5 for all, so the
    first steps learn from the text instead of spending themselves pulling rare labels down:
    AdamW moves a bias by about the learning rate a step, and at 5e-5 a rare label's -4 would
    take tens of thousands of steps.
    """
    p = (positives.astype(np.float64) + 0.5) / (rows + 1.0)
    w = weights.double().numpy() if weights is not None else 1.0
    return torch.tensor(np.log(w * p / (1.0 - p)), dtype=torch.float32)


def minilm_embeddings(model: RecurrentClassifier, vocab: Any) -> int:
    """Start the embedding table from MiniLM's input embeddings; returns the rows copied.

    ValueError (naming ``--init-embeddings minilm``) when the MiniLM package is missing.
    """
    from tweetdomains.minilm import PretrainedError, init_embeddings_from_minilm

    try:
        return init_embeddings_from_minilm(model, vocab)
    except PretrainedError as exc:
        raise ValueError(f"--init-embeddings minilm: {exc}") from None
