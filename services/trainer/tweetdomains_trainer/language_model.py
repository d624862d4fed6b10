"""The language model that pre-trains a classifier's encoder, and its train and evaluation steps.

The objective is ELMo's bidirectional LM: the forward direction's output at step ``t``
predicts token ``t + 1`` and the backward direction's output predicts token ``t - 1``. The two
directions of one recurrent layer never see each other's states, so neither sees the token it
predicts; with more layers they would (layer 2 reads both directions of layer 1), which is why
a bidirectional encoder is pre-trained with one layer only. Each direction has its own
adaptive softmax over the wordpieces, ranked by corpus frequency, so the 2k most frequent
pieces cost a full softmax and the long tail a fraction of one: a CPU epoch stays affordable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tweetdomains.model import RecurrentClassifier
from tweetdomains_trainer.data import EncodedSplit, eval_batches
from tweetdomains_trainer.encoder import ENCODER_MODULES
from tweetdomains_trainer.steps import autocast, optimizer_step

CLIP_NORM = 1.0
# Adaptive softmax cluster bounds, in frequency ranks: a full softmax over the 2k most frequent
# wordpieces, two cheaper tail clusters for the rest.
SOFTMAX_CUTOFFS = (2000, 10_000)
EVAL_BATCH_SIZE = 256


def frequency_ranks(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """``rank[id]``: 0 for the most frequent token id, ties broken by id (adaptive softmax
    classes must be ordered by frequency)."""
    counts = np.bincount(ids, minlength=vocab_size)
    order = np.argsort(-counts, kind="stable")
    ranks = np.empty(vocab_size, dtype=np.int64)
    ranks[order] = np.arange(vocab_size)
    return ranks


def softmax_cutoffs(vocab_size: int) -> list[int]:
    """:data:`SOFTMAX_CUTOFFS` that fall inside the vocabulary (one split for a tiny one)."""
    return [c for c in SOFTMAX_CUTOFFS if c < vocab_size - 1] or [max(1, vocab_size // 2)]


class LanguageModel(nn.Module):
    """A classifier's ``embedding`` and ``recurrent`` modules under next/previous-token heads.

    The modules keep their names, so :meth:`encoder_state` is a slice of a classifier's state
    dict. Targets are frequency ranks (see :func:`frequency_ranks`), not vocabulary ids.
    """

    def __init__(self, classifier: RecurrentClassifier, cutoffs: Sequence[int]) -> None:
        super().__init__()
        c = classifier.config
        self.config = c
        self.embedding = classifier.embedding
        self.recurrent = classifier.recurrent
        self.dropout = nn.Dropout(c.dropout)
        self.next_token = nn.AdaptiveLogSoftmaxWithLoss(c.hidden_dim, c.vocab_size, list(cutoffs))
        self.previous_token = (
            nn.AdaptiveLogSoftmaxWithLoss(c.hidden_dim, c.vocab_size, list(cutoffs))
            if c.bidirectional
            else None
        )

    def forward(
        self, token_ids: torch.Tensor, lengths: torch.Tensor, ranks: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        """Summed NLL over every prediction of both directions, and how many predictions.

        ``token_ids`` and ``ranks`` (the targets) are ``[batch, time]``, right-padded;
        ``lengths`` holds the true lengths (>= 2).
        """
        width = token_ids.shape[1]
        embedded = self.dropout(self.embedding(token_ids))
        lengths_cpu = lengths.cpu()
        if self.config.bidirectional and bool((lengths_cpu != width).any()):
            # Packed, so the backward direction starts at each tweet's true last token.
            packed = pack_padded_sequence(embedded, lengths_cpu, batch_first=True, enforce_sorted=False)
            output, _ = pad_packed_sequence(self.recurrent(packed)[0], batch_first=True, total_length=width)
        else:
            output, _ = self.recurrent(embedded)  # forward-only: padding comes after every real step
        output = self.dropout(output)
        hidden = self.config.hidden_dim
        # Pair (t, t + 1) is a prediction when both are real tokens: forward reads t, predicts
        # t + 1; backward reads t + 1, predicts t.
        pairs = (torch.arange(width - 1, device=token_ids.device)[None, :] + 1) < lengths[:, None].to(
            token_ids.device
        )
        nll = -self.next_token(output[:, :-1, :hidden][pairs], ranks[:, 1:][pairs]).output.sum()
        if self.previous_token is not None:
            backward = output[:, 1:, hidden:][pairs]
            nll = nll - self.previous_token(backward, ranks[:, :-1][pairs]).output.sum()
        directions = 2 if self.previous_token is not None else 1
        return nll, int(pairs.sum()) * directions

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The ``embedding.*`` and ``recurrent.*`` tensors, detached copies on the CPU."""
        return {
            k: v.detach().to("cpu").clone()
            for k, v in self.state_dict().items()
            if k.split(".", 1)[0] in ENCODER_MODULES
        }


def lm_train_step(
    model: LanguageModel,
    batch: tuple[torch.Tensor, torch.Tensor],
    rank_of: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    clip_norm: float = CLIP_NORM,
) -> float:
    """One optimizer step on one batch of ``(ids, lengths)``; returns its mean NLL per prediction."""
    ids, lengths = batch
    ids = ids.to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    with autocast(device):
        nll, count = model(ids, lengths, rank_of[ids])
    return optimizer_step(model, nll.float() / count, optimizer, clip_norm)


@torch.inference_mode()
def lm_eval(
    model: LanguageModel,
    split: EncodedSplit,
    rank_of: torch.Tensor,
    device: torch.device,
    max_batches: int | None = None,
) -> tuple[float, int]:
    """Mean NLL per prediction over a split (``exp`` of it is the perplexity), and the count."""
    model.eval()
    total, count = 0.0, 0
    for i, rows in enumerate(eval_batches(split.lengths, EVAL_BATCH_SIZE)):
        if max_batches is not None and i >= max_batches:
            break
        ids, lengths, _ = split.batch(rows)
        ids = ids.to(device)
        with autocast(device):
            nll, n = model(ids, lengths, rank_of[ids])
        total += float(nll.float())
        count += n
    return total / max(count, 1), count
