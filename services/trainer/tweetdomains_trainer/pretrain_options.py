"""What ``tweetdomains pretrain`` accepts, in the scheme of the options module.

Kept apart from :mod:`.options` so neither passes the package's size bound; the flag metadata,
checks and shared types are that module's. Defaults are the quality recipe's encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tweetdomains.model_config import ModelConfig, ModelKind
from tweetdomains_trainer.options import DATA, MODEL, OPTIMIZATION, DeviceName, EmbeddingInit, Options, flag
from tweetdomains_trainer.recipes import QUALITY


@dataclass
class PretrainOptions(Options):
    """Everything ``tweetdomains pretrain`` accepts; defaults are the quality recipe's encoder."""

    store: str = field(default="var/store", metadata=flag("store URI", cli=False))
    data: list[str] | None = field(
        default=None,
        metadata=flag(
            "files/globs: .txt = one tweet a line, others any record format",
            DATA,
            metavar="PATH",
            shown="the store's raw/ batches",
        ),
    )
    max_texts: int | None = field(
        default=None, metadata=flag("seeded sample after dedup", DATA, positive=True, shown="every text")
    )
    vocab: Literal["wordpiece"] = field(default="wordpiece", metadata=flag("MiniLM's pieces", cli=False))
    min_count: int = field(default=2, metadata=flag("wordpieces kept if seen N times", DATA, positive=True))
    init_embeddings: EmbeddingInit = field(
        default="minilm", metadata=flag("start the embedding table from MiniLM's", MODEL)
    )
    model: ModelKind = field(default=QUALITY["model"], metadata=flag("recurrent layer type", MODEL))
    embedding_dim: int = field(
        default=QUALITY["embedding_dim"], metadata=flag("embedding size (MiniLM's)", MODEL, positive=True)
    )
    hidden_dim: int = field(
        default=QUALITY["hidden_dim"],
        metadata=flag("recurrent state size per direction", MODEL, positive=True),
    )
    recurrent_layers: int = field(
        default=QUALITY["recurrent_layers"], metadata=flag("stacked recurrent layers", MODEL, positive=True)
    )
    bidirectional: bool = field(
        default=QUALITY["bidirectional"],
        metadata=flag("off: forward language model only", MODEL, switch="off"),
    )
    dropout: float = field(
        default=QUALITY["dropout"], metadata=flag("on embeddings and outputs, in [0, 1)", MODEL)
    )
    lr: float = field(default=2e-3, metadata=flag("AdamW learning rate", OPTIMIZATION))
    epochs: int = field(default=1, metadata=flag("epochs to train", OPTIMIZATION, positive=True))
    batch_size: int = field(
        default=64, metadata=flag("texts per optimizer step", OPTIMIZATION, positive=True)
    )
    max_tokens: int = field(
        default=QUALITY["max_tokens"],
        metadata=flag("wordpieces kept per tweet, at least 2", DATA, positive=True),
    )
    validation_percent: int = field(default=5, metadata=flag("held-out share, by content, in (0, 100)", DATA))
    seed: int = field(default=13, metadata=flag("seed of every random draw", OPTIMIZATION))
    device: DeviceName = field(default="auto", metadata=flag("auto: CUDA if present"))
    threads: int | None = field(
        default=None, metadata=flag("CPU threads for torch", positive=True, shown="torch's choice")
    )
    run_id: str | None = field(default=None, metadata=flag("id of the run", shown="generated, lm-..."))
    progress: bool = field(default=True, metadata=flag("progress bars and per-epoch lines", switch="off"))
    dry_run: bool = field(default=False, metadata=flag("one batch, nothing published", switch="on"))

    def __post_init__(self) -> None:
        self.check_fields()
        checks = [
            (self.max_texts is None or self.max_texts >= 2, "--max-texts must be at least 2"),
            (self.lr > 0, "--lr must be positive"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.max_tokens >= 2, "--max-tokens must be at least 2 (a token and the one it predicts)"),
            (0 < self.validation_percent < 100, "--validation-percent must be in (0, 100)"),
            (
                not (self.bidirectional and self.recurrent_layers > 1),
                "--recurrent-layers above 1 needs --no-bidirectional: in a stacked bidirectional "
                "layer each direction reads the other's outputs, so it would see the token it predicts",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The classifier config whose ``embedding`` and ``recurrent`` modules are pre-trained."""
        return ModelConfig(
            kind=self.model,
            vocab_size=vocab_size,
            num_labels=1,
            embedding_dim=self.embedding_dim,
            hidden_dim=self.hidden_dim,
            recurrent_layers=self.recurrent_layers,
            linear_layers=1,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
            max_tokens=self.max_tokens,
        )

    def encoder_config(self, vocab_size: int) -> dict[str, Any]:
        """The published ``config.json``: what a classifier must match to start from the encoder."""
        return {
            "kind": self.model,
            "embedding_dim": self.embedding_dim,
            "hidden_dim": self.hidden_dim,
            "recurrent_layers": self.recurrent_layers,
            "bidirectional": self.bidirectional,
            "max_tokens": self.max_tokens,
            "vocab_size": vocab_size,
        }
