"""One training phase: a fresh model (and its DDP wrapper), optimizer, schedule, loss and
weight average, and the pass over the batches that one epoch is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tweetdomains.model import DistillationLoss, RecurrentClassifier, bce_loss, build_model
from tweetdomains_trainer.averaging import WeightAverage
from tweetdomains_trainer.data import DistillSplit, EncodedDataset, EncodedSplit, train_batches
from tweetdomains_trainer.distributed import Distributed
from tweetdomains_trainer.encoder import PretrainedEncoder, apply_pretrained
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.soft_stream import DistillShardedSplit
from tweetdomains_trainer.steps import (
    make_optimizer,
    minilm_embeddings,
    pos_weights,
    prior_logits,
    set_encoder_trainable,
    train_step,
)
from tweetdomains_trainer.stream import ShardedSplit


def init_embeddings(model: RecurrentClassifier, options: TrainOptions, encoded: EncodedDataset) -> int:
    """Apply ``--init-embeddings``; returns the rows copied. ValueError when MiniLM is missing."""
    if options.init_embeddings == "none":
        return 0
    return minilm_embeddings(model, encoded.vocab)


def label_totals(split: EncodedSplit) -> tuple[np.ndarray, int]:
    """Positives per label and the labeled rows of a train split (a distillation split's
    unlabeled rows left out)."""
    if isinstance(split, DistillShardedSplit):
        return split.label_counts(), split.labeled_rows()
    if isinstance(split, ShardedSplit):
        return split.label_counts(), len(split)
    labeled = split.labeled_targets() if isinstance(split, DistillSplit) else split.labels
    return labeled.sum(axis=0), len(labeled)


@dataclass
class TrainingPhase:
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
        encoder: PretrainedEncoder | None,
        initialise: bool,
        dist: Distributed,
        device: torch.device,
        progress: Progress | None = None,
    ) -> TrainingPhase:
        """A fresh model, initialised from ``encoder`` or MiniLM when ``initialise``;
        ``progress`` says where the weights came from (None: quietly)."""
        say = progress.say if progress is not None else (lambda _: None)
        base_model = build_model(options.model_config(len(encoded.vocab), len(encoded.labels)))
        if encoder is not None:
            apply_pretrained(base_model, encoder)
            say(f"encoder: embedding and {options.model} weights from pretrained run {encoder.run_id}")
        elif initialise:
            copied = init_embeddings(base_model, options, encoded)
            if copied:
                say(f"embeddings: {copied:,} of {len(encoded.vocab):,} rows from MiniLM")
        # Positive weights count the labeled tweets only (a distillation split's unlabeled rows
        # have all-zero labels); with a teacher the recipe's loss becomes the hard term.
        # (A sharded split counts them shard by shard, without its dense label matrix.)
        positives, rows = label_totals(fit_split)
        weights = pos_weights(positives, rows, options.pos_weight)
        if options.head_bias == "prior":
            with torch.no_grad():
                base_model.head[-1].bias.copy_(prior_logits(positives, rows, weights))
        base_model = base_model.to(device)
        model: nn.Module = base_model
        if dist.world_size > 1:
            model = nn.parallel.DistributedDataParallel(
                base_model, device_ids=[device.index] if device.type == "cuda" else None
            )
        optimizer = make_optimizer(model, options.lr, options.weight_decay, options.encoder_lr_scale)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=1)
        loss_fn: nn.Module = bce_loss(
            weights.to(device) if weights is not None else None, options.rank_loss_weight
        )
        if isinstance(fit_split, DistillSplit | DistillShardedSplit):
            loss_fn = DistillationLoss(loss_fn, options.distill_weight, options.temperature)
        average = WeightAverage(base_model, options.ema_decay) if options.ema_decay > 0 else None
        return cls(base_model, model, optimizer, scheduler, loss_fn, average)

    def run_epoch(
        self,
        options: TrainOptions,
        split: EncodedSplit,
        epoch: int,
        dist: Distributed,
        device: torch.device,
        progress: Progress,
        desc: str,
        batches: list[np.ndarray] | None = None,
    ) -> list[float]:
        """One pass over this rank's share of ``split`` (or over ``batches``, this rank's
        part of a stream); the batch losses."""
        if batches is None:
            batches = dist.shard(
                train_batches(split.lengths, options.batch_size, np.random.default_rng([options.seed, epoch]))
            )
        if options.dry_run:
            batches = batches[:1]
        self.model.train()
        set_encoder_trainable(self.base_model, epoch >= options.freeze_epochs)
        losses: list[float] = []
        for rows in progress.track(batches, desc, losses):
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
        return losses

    def kept_weights(self) -> dict[str, torch.Tensor]:
        """The weights validation judges: the average's when averaging, else the model's."""
        return self.average.state if self.average is not None else self.base_model.state_dict()

    def adopt_average(self) -> None:
        """Load the averaged weights into the model for good (no-op without averaging)."""
        if self.average is not None:
            self.base_model.load_state_dict(self.average.state)
