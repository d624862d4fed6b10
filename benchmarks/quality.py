"""Model quality: our LSTM and RNN recipes against TF-IDF, fastText and MiniLM on real tweets.

One run trains and scores, on the benchmark split (``<data>/benchmark/{train,test}.jsonl``):

- ``LSTM (ours)``: the trainer's ``--recipe quality`` (:mod:`tweetdomains_trainer.recipes`),
  trained by the trainer's own ``train()`` exactly as ``tweetdomains train --recipe quality``
  runs it: MiniLM wordpieces with embeddings initialised from MiniLM's input embeddings, a
  BiLSTM with mean+max pooling, BCE with square-root positive weights plus a softmax
  ranking term, AdamW, weights averaged per step (EMA), early stopping on validation
  micro-F1; 3 seeds, mean ± spread.
- ``RNN (ours)``: the same recipe with an Elman RNN.
- ``LSTM (original recipe)``: ``--recipe original``, the seed project's way (word vocabulary,
  embedding 200, hidden 100, 2 layers, last hidden state, Adam lr 0.01, 15 epochs).
- the peers of :mod:`peers`: TF-IDF + LR, fastText ``ova``, MiniLM + LR.
- ``MiniLM fine-tuned (teacher)``: all-MiniLM-L6-v2 fine-tuned end to end by ``tweetdomains
  teacher`` (mean pooling + linear head) on the train part, validation carved out as for our
  rows, scored as a peer with its own tuned thresholds. ``--teacher-store URI --teacher RUN``
  reuses a published one (it must have been fine-tuned on this train file with
  ``--test-percent 0`` and at least this run's validation share: checked, else the run stops);
  without them one is fine-tuned in the run (about an hour on a 2-core CPU).
- ``LSTM distilled (ours)``: the quality recipe with ``--teacher`` (:mod:`tweetdomains_trainer.distill`)
  on the train part plus ``--unlabeled`` tweets (default: TweetEval's ``*_text.txt`` under the
  data folder, capped by ``--unlabeled-limit``); 3 seeds. Its soft labels are cached in the
  teacher's store, so a second benchmark run does not rescore them.

Validation is carved out of train by content hash (15%, :func:`tweetdomains.dataset.split_of`);
test is only scored, never used for a choice. Each row is scored twice with
:func:`tweetdomains.metrics.score`: with the common rule (p >= 0.5, else the top label), and
with the model's own per-label thresholds tuned on validation. Our recurrent models train on
the train part only; the peers' rule-0.5 rows are fitted on the whole train split, as in the
reference figures of ``data/README.md`` (the tuned rows on the train part, to tune on
validation). Inference speed is raw tweets in, probabilities out, on CPU with ``--threads``,
measured once every model of a table is trained, the models taking turns (:class:`SpeedTrial`).

A second table (:mod:`topicxl`) repeats the LSTM recipe, TF-IDF + LR, a teacher fine-tuned in
the run and the LSTM distilled from it (``--topicxl-unlabeled-limit`` unlabeled tweets, default
5,000) on TweetTopicXL English (train 180 + validation 20, from which every neural row carves
its validation share; test 800; 19 topics).

The rows, the speed trial and the table live in :mod:`quality_rows`, the recurrent rows in
:mod:`recurrent`, the teacher's and the distilled student's parts in :mod:`distilled`. Writes
``quality.md``, ``quality.json`` and ``quality.png`` under ``--out``; the last line is
``lstm_micro=N lstm_macro=N lstm_p1=N best_peer_micro=N best_peer_macro=N best_peer_p1=N
lstm_vs_minilm_speed=N finetuned_micro=N finetuned_macro=N finetuned_p1=N
lstm_vs_finetuned_speed=N distilled_micro=N distilled_macro=N distilled_p1=N`` (``best_peer_*``
includes the fine-tuned MiniLM; ``nan`` for a skipped row).

    python benchmarks/quality.py [--out var/reports/quality] [--seeds 3] [--threads 2] [--dry-run]
        [--teacher-store URI --teacher RUN] [--unlabeled PATH ...] [--unlabeled-limit N]
        [--topicxl-unlabeled-limit N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from distilled import DISTILLED, FINETUNED, TWEETEVAL_TEXTS, finetuned_row, prepare_teacher, unlabeled_texts
from peers import FastTextPeer, MiniLMPeer, TfidfPeer
from quality_rows import (
    VALIDATION_PERCENT,
    Row,
    SpeedTrial,
    Split,
    carve_validation,
    markdown_table,
    peer_row,
    plot,
    read_split,
)
from recurrent import recurrent_row
from topicxl import UNLABELED_LIMIT, topicxl_rows

from tweetdomains.settings import data_dir
from tweetdomains_trainer.recipes import RECIPES

# Our rows are the trainer's own recipes (tweetdomains_trainer.recipes), trained by its
# ``train()``: what the benchmark scores is what ``tweetdomains train --recipe ...`` publishes.
OURS: dict[str, Any] = dict(RECIPES["quality"])
OURS_RNN: dict[str, Any] = {**OURS, "model": "rnn"}
SEED_RECIPE: dict[str, Any] = dict(RECIPES["original"])


# ----------------------------------------------------------------------------- main


def _mean(row: Row | None, field: str) -> float:
    return row.mean(field) if row is not None else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", default="var/reports/quality", help="folder for quality.md/.json/.png")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per neural row")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap every recipe's epochs")
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of rows to skip: rnn,seed,fasttext,minilm,finetuned,distilled,topicxl",
    )
    parser.add_argument(
        "--validation-percent",
        type=int,
        default=VALIDATION_PERCENT,
        help=f"share of train carved out as validation for every row (default {VALIDATION_PERCENT})",
    )
    parser.add_argument(
        "--teacher-store", default=None, help="store URI holding a published teacher to reuse"
    )
    parser.add_argument(
        "--teacher",
        default=None,
        metavar="RUN",
        help="teacher run id (or latest) in --teacher-store, fine-tuned on this train file with "
        "--test-percent 0; default: fine-tune one in the run",
    )
    parser.add_argument(
        "--unlabeled",
        nargs="+",
        default=None,
        metavar="PATH",
        help=f"unlabeled tweets for the distilled rows (default: <data>/{TWEETEVAL_TEXTS})",
    )
    parser.add_argument(
        "--unlabeled-limit", type=int, default=None, help="a seeded sample of this many unlabeled tweets"
    )
    parser.add_argument(
        "--topicxl-unlabeled-limit",
        type=int,
        default=UNLABELED_LIMIT,
        help=f"unlabeled tweets sampled for the TweetTopicXL student (default {UNLABELED_LIMIT})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny data, 1 seed, 1 epoch: checks the plumbing"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.threads < 1:
        parser.error("--seeds and --threads must be at least 1")
    if bool(args.teacher) != bool(args.teacher_store):
        parser.error("--teacher and --teacher-store go together")
    if not 0 < args.validation_percent < 100:
        parser.error("--validation-percent must be in (0, 100)")
    torch.set_num_threads(args.threads)
    root = data_dir()
    bench = root / "benchmark"
    if not (bench / "train.jsonl").is_file() or not (bench / "test.jsonl").is_file():
        print(f"benchmark data not found under {bench} (set TWEETDOMAINS_DATA_DIR)", file=sys.stderr)
        return 2
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    work = Path(tempfile.mkdtemp(prefix="quality-"))  # the trainer's store: dataset caches
    store = str(work / "store")
    train_file = bench / "train.jsonl"
    train, test = read_split(train_file), read_split(bench / "test.jsonl")
    seeds = list(range(args.seeds))
    cap = args.max_epochs
    if args.dry_run:
        train_file = work / "train-head.jsonl"
        with (bench / "train.jsonl").open(encoding="utf-8") as handle:
            train_file.write_text("".join(itertools.islice(handle, 300)), encoding="utf-8")
        train, test = read_split(train_file), Split(test.texts[:100], test.label_sets[:100])
        seeds, cap = [0], 1
        skip.add("minilm")
        args.unlabeled_limit = min(args.unlabeled_limit or 64, 64)
        args.topicxl_unlabeled_limit = min(args.topicxl_unlabeled_limit, 64)

    fit, val = carve_validation(train, args.validation_percent)
    # Scored over every label of train or test, as the reference figures are.
    labels = sorted({n for s in (train, test) for names in s.label_sets for n in names})
    print(
        f"benchmark: train {len(fit.texts)} + validation {len(val.texts)}, "
        f"test {len(test.texts)}, {len(labels)} labels"
    )
    started = time.perf_counter()
    ours = [train_file]
    split_options = {"validation_percent": args.validation_percent}
    recipe, recipe_rnn, recipe_seed = ({**r, **split_options} for r in (OURS, OURS_RNN, SEED_RECIPE))
    teacher: tuple[str, str, float] | None = None
    if not {"finetuned", "distilled"} <= skip:
        try:
            teacher = prepare_teacher(args, train_file, work, args.validation_percent, args.dry_run)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    # The default serving (float32) is the LSTM row; bfloat16 serving of the same models beside it.
    bfloat16 = Row("LSTM (ours), bfloat16 serving", [], [], [], [], [], [], [], [], 0)
    trial = SpeedTrial()
    lstm = recurrent_row(
        "LSTM (ours)", recipe, ours, test, labels, seeds, store, trial, max_epochs=cap, bfloat16_row=bfloat16
    )
    rows = [lstm, bfloat16]
    if "rnn" not in skip:
        rows.append(
            recurrent_row("RNN (ours)", recipe_rnn, ours, test, labels, seeds, store, trial, max_epochs=cap)
        )
    print("  peers: TF-IDF + LR")
    rows.append(peer_row(TfidfPeer, train, fit, val, test, labels, trial))
    if "fasttext" not in skip:
        print("  peers: fastText")
        rows.append(
            peer_row(lambda: FastTextPeer(threads=args.threads), train, fit, val, test, labels, trial)
        )
    if "minilm" not in skip:
        print("  peers: MiniLM + LR")
        rows.append(peer_row(MiniLMPeer, train, fit, val, test, labels, trial))
    if "seed" not in skip:
        rows.append(
            recurrent_row(
                "LSTM (original recipe)", recipe_seed, ours, test, labels, seeds, store, trial, max_epochs=cap
            )
        )
    distilled: Row | None = None
    if teacher is not None and "finetuned" not in skip:
        print(f"  peers: {FINETUNED}")
        rows.append(finetuned_row(teacher[0], teacher[1], test, labels, trial, teacher[2]))
    if teacher is not None and "distilled" not in skip:
        patterns = args.unlabeled or [str(p) for p in sorted(root.glob(TWEETEVAL_TEXTS))]
        if patterns:
            unlabeled = unlabeled_texts(patterns, args.unlabeled_limit, work / "unlabeled.txt", test)
        else:
            unlabeled = []
            print(f"  no unlabeled tweets under {root / TWEETEVAL_TEXTS}: distilling on the labeled ones")
        student = {**recipe, "teacher": teacher[1], "unlabeled": unlabeled or None}
        distilled = recurrent_row(
            DISTILLED, student, ours, test, labels, seeds, teacher[0], trial, max_epochs=cap
        )
        rows.append(distilled)
    print("  speed, every model in turn:", flush=True)
    trial.run(test.texts, warmup=train.texts[:64])

    xl_rows: list[Row] = []
    if "topicxl" not in skip:
        xl_rows = topicxl_rows(args, root, OURS, seeds, cap, skip, work)
    total = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peers = [r for r in rows if r.name in (TfidfPeer.name, FastTextPeer.name, MiniLMPeer.name, FINETUNED)]
    minilm = next((r for r in rows if r.name == MiniLMPeer.name), None)
    finetuned = next((r for r in rows if r.name == FINETUNED), None)
    speed_ratio = (
        lstm.mean("tweets_per_second") / minilm.mean("tweets_per_second") if minilm else float("nan")
    )
    served = distilled or lstm  # the distilled LSTM is the model that would ship
    finetuned_ratio = (
        served.mean("tweets_per_second") / finetuned.mean("tweets_per_second") if finetuned else float("nan")
    )
    table = markdown_table(rows)
    text = (
        "# Model quality on the benchmark split\n\n"
        f"Test split: {len(test.texts)} tweets, {len(labels)} labels; our models train on "
        f"{len(fit.texts)} tweets and choose epochs and thresholds on {len(val.texts)} validation "
        f"tweets carved from train. Neural rows: mean ± spread over seeds {seeds}. "
        "Untuned columns: p >= 0.5, else the top label; tuned: per-label thresholds fitted on "
        f"validation. Speed: raw tweets/s on CPU, {args.threads} thread(s), once every model is trained: "
        "the models take turns for 3 rounds, each round the median of passes over the test "
        "split repeated for at least 3 s, and each model keeps its median round.\n\n" + table
    )
    if xl_rows:
        text += "\n## TweetTopicXL (English)\n\n" + markdown_table(xl_rows)
    text += f"\nTotal benchmark time {total:.0f} s.\n"
    (out / "quality.md").write_text(text, encoding="utf-8")
    (out / "quality.json").write_text(
        json.dumps(
            {
                "recipe": OURS,
                "validation_percent": args.validation_percent,
                "teacher": {"store": teacher[0], "run_id": teacher[1]} if teacher else None,
                "rows": [asdict(r) for r in rows],
                "topicxl": [asdict(r) for r in xl_rows],
                "seeds": seeds,
                "threads": args.threads,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    plot(rows, out / "quality.png", "Benchmark test split (rule p>=0.5 else top)")
    print(text)
    best = {f: max((r.mean(f) for r in peers), default=float("nan")) for f in ("micro", "macro", "p1")}
    print(
        f"lstm_micro={lstm.mean('micro'):.3f} lstm_macro={lstm.mean('macro'):.3f} "
        f"lstm_p1={lstm.mean('p1'):.3f} best_peer_micro={best['micro']:.3f} "
        f"best_peer_macro={best['macro']:.3f} best_peer_p1={best['p1']:.3f} "
        f"lstm_vs_minilm_speed={speed_ratio:.1f} "
        f"finetuned_micro={_mean(finetuned, 'micro'):.3f} finetuned_macro={_mean(finetuned, 'macro'):.3f} "
        f"finetuned_p1={_mean(finetuned, 'p1'):.3f} lstm_vs_finetuned_speed={finetuned_ratio:.1f} "
        f"distilled_micro={_mean(distilled, 'micro'):.3f} distilled_macro={_mean(distilled, 'macro'):.3f} "
        f"distilled_p1={_mean(distilled, 'p1'):.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
