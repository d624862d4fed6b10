"""The recurrent multi-label classifiers: embedding -> RNN/LSTM -> pooled state -> ReLU MLP -> logits.

Every knob the original project tuned is a field of :class:`ModelConfig` (embedding size, hidden
size, recurrent layers, linear layers, dropout) plus a bidirectional option and the pooling of
the recurrent outputs. The model outputs one logit per label; the loss is BCE-with-logits,
because a tweet carries several domains (the original reduced it to one label with softmax).

Checkpoints are safetensors weights plus a JSON config: nothing that unpickles code.
"""

from __future__ import annotations

from typing import Literal

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

# The config is torch-free (the command line reads its defaults); re-exported here.
from tweetdomains.model_config import ModelConfig as ModelConfig
from tweetdomains.model_config import ModelKind as ModelKind
from tweetdomains.model_config import Pooling as Pooling

# Serving arithmetic of the recurrent products: exact float32, or bfloat16 (see InputProjections).
Precision = Literal["float32", "bfloat16"]
DTYPES: dict[Precision, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class RecurrentClassifier(nn.Module):
    """Shared body of :class:`LSTMClassifier` and :class:`RNNClassifier`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=0)
        recurrent_cls = nn.LSTM if c.kind == "lstm" else nn.RNN
        self.recurrent = recurrent_cls(
            c.embedding_dim,
            c.hidden_dim,
            num_layers=c.recurrent_layers,
            batch_first=True,
            bidirectional=c.bidirectional,
            dropout=c.dropout if c.recurrent_layers > 1 else 0.0,
        )
        directions = 2 if c.bidirectional else 1
        width = c.hidden_dim * directions * (2 if c.pooling == "mean_max" else 1)
        layers: list[nn.Module] = [nn.Dropout(c.dropout)]
        for _ in range(c.linear_layers - 1):
            layers += [nn.Linear(width, c.hidden_dim), nn.ReLU(), nn.Dropout(c.dropout)]
            width = c.hidden_dim
        layers.append(nn.Linear(width, c.num_labels))
        self.head = nn.Sequential(*layers)
        self.projections: InputProjections | None = None  # see prepare_for_serving()

    def prepare_for_serving(self, precision: Precision = "float32") -> bool:
        """Eval mode, and precomputed first-layer input projections where they fit.

        Serving then looks up each token's input gates instead of multiplying its embedding
        by the input weights, about two thirds of a one-layer recurrence's arithmetic. Same
        function, same float32 results to rounding; ``precision="bfloat16"`` trades that for
        speed (see :class:`InputProjections`). Call again after changing the weights;
        ``train()`` mode never uses the tables. Returns whether the tables are in use.
        """
        if precision not in DTYPES:  # refused for every model, whether its tables fit or not
            raise ValueError(f"serving precision must be one of {', '.join(DTYPES)}, not {precision!r}")
        self.eval()
        fits = InputProjections.fits(self.config)
        self.projections = InputProjections(self, precision) if fits else None
        return self.projections is not None

    def encode(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled recurrent features, shape ``[batch, features]``.

        ``token_ids`` is ``[batch, time]`` right-padded with 0; ``lengths`` holds the true
        lengths (>= 1). Padded steps never reach the pooled features, and each tweet's
        backward direction starts at its true last token (see :meth:`recurrent_outputs`).
        """
        lengths_cpu = lengths.cpu()
        if self.projections is not None and not self.training:
            # Longest tweet first, so each step runs on a leading slice of the batch.
            order = torch.argsort(lengths_cpu, descending=True, stable=True)
            ids = token_ids[order.to(token_ids.device)]
            pooled = self.projections.pooled(ids, lengths_cpu[order], self.config.pooling)
            return pooled[torch.argsort(order).to(pooled.device)]
        outputs = self.recurrent_outputs(self.embedding(token_ids), lengths_cpu)
        batch, width, _ = outputs.shape
        directions = 2 if self.config.bidirectional else 1
        steps = outputs.view(batch, width, directions, -1).permute(1, 2, 0, 3)
        return pool_steps(steps, lengths_cpu.to(steps.device), self.config.pooling)

    def recurrent_outputs(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last recurrent layer's outputs, ``[batch, time, hidden * directions]``.

        Each direction's outputs are in the order it read the tweet: step ``s`` of the
        backward half is its state after tokens ``L-1 .. L-1-s`` (a tweet's backward run
        ends at step ``L-1``, like the forward one), which is all pooling needs.

        A forward-only recurrence never sees the right padding before a tweet's last token,
        so the dense kernel over the padded batch is exact. A backward direction is run the
        same way over each tweet reversed within its own length: exact like packing the
        batch, without packing's per-step batch reshuffles (several times faster on CPU,
        where packed bidirectional batches are slow). Between stacked layers the backward
        outputs are put back in token order.
        """
        if not self.config.bidirectional:
            output, _ = self.recurrent(embedded)
            return output
        if bool((lengths == embedded.shape[1]).all()):  # no padding: the library kernel is exact
            output, _ = self.recurrent(embedded)
            half = self.config.hidden_dim
            return torch.cat([output[..., :half], output[..., half:].flip(1)], dim=2)
        gather = reversed_positions(lengths, embedded.shape[1]).to(embedded.device)[:, :, None]
        rnn = self.recurrent
        x = embedded
        last = self.config.recurrent_layers - 1
        for layer in range(self.config.recurrent_layers):
            forward = self._direction(x, layer, "")
            flipped = x.gather(1, gather.expand(-1, -1, x.shape[2]))
            backward = self._direction(flipped, layer, "_reverse")
            if layer < last:
                backward = backward.gather(1, gather.expand(-1, -1, backward.shape[2]))
            x = torch.cat([forward, backward], dim=2)
            if layer < last and rnn.dropout > 0:
                x = nn.functional.dropout(x, rnn.dropout, self.training)
        return x

    def _direction(self, x: torch.Tensor, layer: int, suffix: str) -> torch.Tensor:
        """One direction of one layer of ``self.recurrent``, run forward-only over ``x``."""
        rnn = self.recurrent
        names = (f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}", f"bias_hh_l{layer}")
        params = [getattr(rnn, name + suffix) for name in names]
        zeros = x.new_zeros(1, x.shape[0], self.config.hidden_dim)
        if isinstance(rnn, nn.LSTM):
            output, _, _ = torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, self.training, False, True)
        else:
            output, _ = torch.rnn_tanh(x, zeros, params, True, 1, 0.0, self.training, False, True)
        return output

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One logit per label, shape ``[batch, num_labels]``."""
        return self.head(self.encode(token_ids, lengths))


def native_bfloat16() -> bool:
    """Whether oneDNN reports native bfloat16 products on this CPU (AMX or AVX-512 BF16)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pool_steps(steps: torch.Tensor, lengths: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Features ``[batch, directions * hidden (* 2 for mean_max)]`` from recurrent outputs.

    ``steps`` is ``[time, directions, batch, hidden]``, each direction in its reading order
    (see :meth:`RecurrentClassifier.recurrent_outputs`), so a tweet's valid steps are
    ``s < L`` and its final states sit at ``L - 1`` in every direction.
    """
    width, _, batch, _ = steps.shape
    if pooling == "last":
        final = steps[lengths - 1, :, torch.arange(batch, device=steps.device)]  # [batch, dirs, hidden]
        return pooled_features(pooling, lengths, final=final.transpose(0, 1))
    valid = (torch.arange(width, device=steps.device)[:, None] < lengths[None, :])[:, None, :, None]
    peak = steps.masked_fill(~valid, float("-inf")).amax(dim=0)
    total = (steps * valid).sum(dim=0) if pooling == "mean_max" else None
    return pooled_features(pooling, lengths, total=total, peak=peak)


def pooled_features(
    pooling: Pooling,
    lengths: torch.Tensor,
    final: torch.Tensor | None = None,
    total: torch.Tensor | None = None,
    peak: torch.Tensor | None = None,
) -> torch.Tensor:
    """The classifier's features from per-direction pools, each ``[directions, batch, hidden]``:
    the ``final`` states, or the ``total`` and ``peak`` of each tweet's steps. Features list
    the forward direction first, as ``nn.LSTM`` concatenates them."""

    def flat(pool: torch.Tensor | None) -> torch.Tensor:
        assert pool is not None, f"{pooling} pooling needs this pool"
        return pool.transpose(0, 1).reshape(pool.shape[1], -1)

    if pooling == "last":
        return flat(final)
    if pooling == "max":
        return flat(peak)
    summed = flat(total)
    return torch.cat([summed / lengths[:, None].to(summed.dtype), flat(peak)], dim=1)


def reversed_positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """``[batch, width]`` indices that reverse each row within its own length.

    Position t of a reversed row holds token ``L-1-t``; padding stays where it was, so a
    forward-only pass over the reversed rows is each tweet's exact backward direction.
    """
    steps = torch.arange(width)[None, :]
    return torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)


class InputProjections:
    """A one-layer recurrence with each token's input gates looked up, not computed.

    For every vocabulary entry and direction, ``embedding @ W_ih.T + b_ih + b_hh`` is
    computed once; a step then costs one ``[batch, hidden] x [hidden, gates]`` product per
    direction, and the gate activations of both directions run as one operation each. The
    batch runs time-major over the right-padded ids (the backward direction over rows
    reversed within their lengths), so one pass serves a batch of mixed lengths. Each
    step gathers its tokens' gates into a small buffer that stays in cache, rather than
    reading them from a ``[time, batch, gates]`` copy of the table rows (2x faster on CPU).

    ``precision="bfloat16"`` multiplies the hidden state by the recurrent weights in
    bfloat16, which CPUs with AMX or AVX-512 BF16 run several times faster than float32;
    the gates, cell state and pooling stay float32. Probabilities move by about 1e-3 and a
    tweet's result still does not depend on the rest of its batch.
    """

    # Tables above this size (a large word vocabulary) are not worth their memory.
    BUDGET_BYTES = 160 * 2**20

    def __init__(self, model: RecurrentClassifier, precision: Precision = "float32") -> None:
        self.dtype = DTYPES[precision]
        rnn, c = model.recurrent, model.config
        self.lstm = c.kind == "lstm"
        self.hidden_dim = size = c.hidden_dim
        self.vocab_size = c.vocab_size
        # LSTM gates reordered (input, forget, output, cell) so one sigmoid covers three.
        order = torch.arange((4 if self.lstm else 1) * size)
        if self.lstm:
            order = torch.cat([order[: 2 * size], order[3 * size :], order[2 * size : 3 * size]])
        weight = model.embedding.weight.detach()
        tables: list[torch.Tensor] = []
        self.hidden_weights: list[torch.Tensor] = []
        for suffix in ("", "_reverse") if c.bidirectional else ("",):
            w_ih, w_hh = getattr(rnn, "weight_ih_l0" + suffix), getattr(rnn, "weight_hh_l0" + suffix)
            bias = getattr(rnn, "bias_ih_l0" + suffix) + getattr(rnn, "bias_hh_l0" + suffix)
            tables.append(torch.addmm(bias.detach(), weight, w_ih.detach().T)[:, order])
            self.hidden_weights.append(w_hh.detach().T[:, order].contiguous().to(self.dtype))
        # One table, the backward direction's rows after the forward ones.
        self.table = torch.cat(tables).contiguous()

    @classmethod
    def fits(cls, config: ModelConfig) -> bool:
        gates = (4 if config.kind == "lstm" else 1) * config.hidden_dim
        directions = 2 if config.bidirectional else 1
        size = config.vocab_size * gates * directions * 4
        return config.recurrent_layers == 1 and size <= cls.BUDGET_BYTES

    def pooled(self, token_ids: torch.Tensor, lengths: torch.Tensor, pooling: Pooling) -> torch.Tensor:
        """What ``pool_steps(recurrent_outputs(...))`` gives for these tokens: ``[batch, features]``.

        ``lengths`` must not increase along the batch (longest tweet first): step ``t`` then
        runs only on the leading rows whose tweets are longer than ``t``, as a packed sequence
        would, and never computes a padded step. Pools are kept as the steps go (a running
        sum and maximum, or each tweet's state at its last step), so no step's output is stored.
        """
        if bool((lengths[1:] > lengths[:-1]).any()):
            raise ValueError("pooled() needs the batch sorted by length, longest first")
        batch, width = token_ids.shape
        ids = token_ids.T.contiguous()[:, None, :]  # [time, directions, batch]
        if len(self.hidden_weights) == 2:
            reverse = reversed_positions(lengths, width).to(token_ids.device)
            backward = token_ids.gather(1, reverse).T[:, None, :] + self.vocab_size
            ids = torch.cat([ids, backward], dim=1)
        # Rows still reading at each step: a prefix of the batch that shrinks.
        active = (lengths[None, :] > torch.arange(width)[:, None]).sum(dim=1).tolist()
        directions, size, columns = len(self.hidden_weights), self.hidden_dim, self.table.shape[1]
        shape = (directions, batch, size)
        final = self.table.new_empty(shape) if pooling == "last" else None
        total = self.table.new_zeros(shape) if pooling == "mean_max" else None
        peak = self.table.new_full(shape, float("-inf")) if pooling != "last" else None
        gate_buffer = self.table.new_empty(directions * batch * columns)
        h = self.table.new_zeros(shape, dtype=self.dtype)
        c = self.table.new_zeros(shape)
        for t, rows in enumerate(active):
            # This step's input gates, gathered into a buffer that stays in cache.
            gates = gate_buffer[: directions * rows * columns].view(directions, rows, columns)
            torch.index_select(self.table, 0, ids[t, :, :rows].reshape(-1), out=gates.view(-1, columns))
            for d, hidden_weight in enumerate(self.hidden_weights):
                if self.dtype == torch.float32:
                    gates[d].addmm_(h[d, :rows], hidden_weight)
                else:  # a bfloat16 product, widened before the float32 sum (a mixed add is slow)
                    gates[d] += torch.mm(h[d, :rows], hidden_weight).float()
            if self.lstm:
                act = torch.sigmoid(gates[..., : 3 * size])  # input, forget, output
                cell = torch.tanh(gates[..., 3 * size :])
                c = torch.addcmul(act[..., size : 2 * size] * c[:, :rows], act[..., :size], cell)
                state = act[..., 2 * size :] * torch.tanh(c)
            else:
                state = torch.tanh(gates)
            if final is not None:  # a row's last write is its state at step L-1
                final[:, :rows] = state
            if total is not None:
                total[:, :rows] += state
            if peak is not None:
                torch.maximum(peak[:, :rows], state, out=peak[:, :rows])
            h = state if self.dtype == torch.float32 else state.to(self.dtype)
        return pooled_features(pooling, lengths.to(self.table.device), final=final, total=total, peak=peak)


class LSTMClassifier(RecurrentClassifier):
    """Embedding -> LSTM -> ReLU MLP -> one logit per domain."""

    def __init__(self, config: ModelConfig) -> None:
        if config.kind != "lstm":
            raise ValueError("LSTMClassifier needs kind='lstm'")
        super().__init__(config)


class RNNClassifier(RecurrentClassifier):
    """Embedding -> Elman RNN (tanh) -> ReLU MLP -> one logit per domain."""

    def __init__(self, config: ModelConfig) -> None:
        if config.kind != "rnn":
            raise ValueError("RNNClassifier needs kind='rnn'")
        super().__init__(config)


def build_model(config: ModelConfig) -> RecurrentClassifier:
    """The classifier class that ``config.kind`` names."""
    return LSTMClassifier(config) if config.kind == "lstm" else RNNClassifier(config)


class MultiLabelLoss(nn.Module):
    """Binary cross-entropy per label, plus (``rank_weight`` > 0) a softmax cross-entropy
    across labels towards the tweet's true domains, shared out evenly.

    BCE alone scores each domain on its own; the softmax term makes the true domains
    outrank the others within a tweet, which is what the top-scored label (P@1) needs. It
    is blind to a common shift of the logits, so the sigmoid probabilities that the
    0.5 rule reads stay BCE's. Rows without a true domain add nothing to it.
    """

    def __init__(self, pos_weight: torch.Tensor | None = None, rank_weight: float = 0.0) -> None:
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.rank_weight = rank_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = self.bce(logits, targets)
        if self.rank_weight > 0:
            mass = targets.sum(dim=1, keepdim=True)
            share = targets / mass.clamp_min(1e-8)
            ranked = -(share * torch.log_softmax(logits, dim=1)).sum(dim=1)
            loss = loss + self.rank_weight * ranked.mean()
        return loss


class DistillationLoss(nn.Module):
    """Knowledge distillation (Hinton et al., 2015) for a multi-label classifier: ``hard`` (the
    recipe's :class:`MultiLabelLoss`) on the labeled rows, plus ``weight`` x T^2 x the BCE between
    the student's and the teacher's sigmoid probabilities, both softened by the temperature T
    (the teacher's logit is ``logit(p)``), on every row.

    ``targets`` is ``[hard labels (L) | teacher probabilities (L) | labeled (1)]`` per row (a
    distillation split's batch); unlabeled rows (``labeled`` 0) add only the distillation term.
    Targets of width L alone (validation, test) give the hard loss alone, so validation loss
    stays comparable with a run without a teacher. The hard term is the recipe's loss over the
    batch's labeled rows times their share of the batch, so a labeled row weighs what it would
    in a batch of labeled rows alone however many unlabeled rows share it (the plain mean gave
    the one labeled row of a mostly unlabeled batch the whole batch's weight); the
    distillation term is the mean over all rows and labels; T^2 keeps the soft term's
    gradients at the hard term's scale as T grows.
    """

    def __init__(self, hard: MultiLabelLoss, weight: float = 1.0, temperature: float = 1.0) -> None:
        super().__init__()
        self.hard, self.weight, self.temperature = hard, weight, temperature

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = logits.shape[1]
        if targets.shape[1] == n:
            return self.hard(logits, targets)
        hard, soft, labeled = targets[:, :n], targets[:, n : 2 * n], targets[:, 2 * n] > 0.5
        if bool(labeled.any()):
            loss = self.hard(logits[labeled], hard[labeled]) * labeled.float().mean()
        else:
            loss = logits.sum() * 0.0
        if self.weight > 0:
            t = self.temperature
            eps = 1e-6
            teacher = torch.sigmoid(torch.logit(soft.clamp(eps, 1 - eps)) / t)
            distill = nn.functional.binary_cross_entropy_with_logits(logits / t, teacher)
            loss = loss + self.weight * t * t * distill
        return loss


def bce_loss(pos_weight: torch.Tensor | None = None, rank_weight: float = 0.0) -> MultiLabelLoss:
    """Multi-label loss; ``pos_weight`` (one per label) up-weights rare domains, ``rank_weight``
    adds the softmax ranking term (:class:`MultiLabelLoss`)."""
    return MultiLabelLoss(pos_weight, rank_weight)


def pad_batch(
    sequences: list[list[int]], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to the longest in the batch (dynamic padding), with their lengths."""
    lengths = torch.tensor([max(1, len(s)) for s in sequences], dtype=torch.long)
    ids = torch.zeros((len(sequences), int(lengths.max()) if sequences else 1), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        else:
            ids[row, 0] = 1  # <UNK>: an empty tweet still has one step
    return ids.to(device), lengths


def model_to_bytes(model: nn.Module) -> bytes:
    """Weights as safetensors bytes (contiguous CPU tensors)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return save_safetensors(state)


def model_from_bytes(config: ModelConfig, weights: bytes) -> RecurrentClassifier:
    """Rebuild a classifier from its config and safetensors weights, in eval mode.

    safetensors holds raw tensors only: loading cannot run code, whatever the file holds.
    """
    model = build_model(config)
    state = load_safetensors(weights)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model
