"""Model quality: our LSTM and RNN recipes against TF-IDF, fastText and MiniLM on real tweets.

One run trains and scores, on the benchmark split (``<data>/benchmark/{train,test}.jsonl``):

- ``LSTM (ours)``: the project's recipe, MiniLM wordpieces with embeddings initialised from
  MiniLM's input embeddings (:mod:`tweetdomains.pretrained`), a BiLSTM with mean+max
  pooling, AdamW, early stopping on validation micro-F1; 3 seeds, mean ± spread.
- ``RNN (ours)``: the same recipe with an Elman RNN.
- ``LSTM (seed recipe)``: the original project's way: word vocabulary, embedding 200, hidden
  100, 2 layers, last hidden state, Adam lr 0.01, 15 epochs.
- the peers of :mod:`peers`: TF-IDF + LR, fastText ``ova``, MiniLM + LR.

Validation is carved out of train by content hash (15%, :func:`tweetdomains.dataset.split_of`);
test is only scored, never used for a choice. Each row is scored twice with
:func:`tweetdomains.metrics.score`: with the common rule (p >= 0.5, else the top label), and
with the model's own per-label thresholds tuned on validation. Our recurrent models train on
the train part only; the peers' rule-0.5 rows are fitted on the whole train split, as in the
reference figures of ``data/README.md`` (the tuned rows on the train part, to tune on
validation). Inference speed is raw tweets in, probabilities out, on CPU with ``--threads``.

A second table repeats the LSTM recipe beside TF-IDF + LR on TweetTopicXL English (train 180,
validation 20, test 800, 19 topics).

Writes ``quality.md``, ``quality.json`` and ``quality.png`` under ``--out``; the last line is
``lstm_micro=N lstm_macro=N lstm_p1=N best_peer_micro=N best_peer_macro=N best_peer_p1=N
lstm_vs_minilm_speed=N``.

    python benchmarks/quality.py [--out var/reports/quality] [--seeds 3] [--threads 2] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import FastTextPeer, MiniLMPeer, Peer, TfidfPeer

from tweetdomains.dataset import split_of
from tweetdomains.metrics import binarize, score, tune_thresholds
from tweetdomains.model import ModelConfig, RecurrentClassifier, build_model, pad_batch
from tweetdomains.predict import Classifier, run_artifacts
from tweetdomains.pretrained import build_wordpiece_vocab, init_embeddings_from_minilm
from tweetdomains.text import Vocabulary, content_hash, normalize, tokenize

VALIDATION_PERCENT = 15


@dataclass(frozen=True)
class Recipe:
    """How one recurrent row is built and trained."""

    kind: str = "lstm"
    vocab: str = "wordpiece"  # or "word"
    minilm_init: bool = True
    embedding_dim: int = 384
    hidden_dim: int = 192
    recurrent_layers: int = 1
    linear_layers: int = 1
    dropout: float = 0.3
    bidirectional: bool = True
    pooling: str = "mean_max"
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    max_epochs: int = 12
    patience: int = 3
    clip_norm: float = 1.0
    max_tokens: int = 64


OURS = Recipe()
OURS_RNN = replace(OURS, kind="rnn")
SEED_RECIPE = Recipe(
    vocab="word",
    minilm_init=False,
    embedding_dim=200,
    hidden_dim=100,
    recurrent_layers=2,
    linear_layers=2,
    bidirectional=False,
    pooling="last",
    optimizer="adam",
    lr=0.01,
    weight_decay=0.0,
    batch_size=64,
    max_epochs=15,
    patience=0,  # the original trained a fixed number of epochs
    clip_norm=0.0,
)


@dataclass
class Split:
    texts: list[str]
    label_sets: list[list[str]]


@dataclass
class Row:
    """One model's figures on the test split (lists: one entry per seed)."""

    name: str
    micro: list[float]
    macro: list[float]
    p1: list[float]
    micro_tuned: list[float]
    macro_tuned: list[float]
    p1_tuned: list[float]
    train_seconds: list[float]
    tweets_per_second: list[float]
    size_bytes: int

    def mean(self, field: str) -> float:
        return float(statistics.fmean(getattr(self, field)))

    def spread(self, field: str) -> float:
        values = getattr(self, field)
        return float(statistics.pstdev(values)) if len(values) > 1 else 0.0


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("TWEETDOMAINS_DATA_DIR", default))


def read_benchmark(path: Path) -> Split:
    texts, label_sets = [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            if obj.get("domains"):
                texts.append(obj["text"])
                label_sets.append(list(obj["domains"]))
    return Split(texts, label_sets)


def read_topicxl(path: Path) -> Split:
    texts, label_sets = [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            if obj.get("topics"):
                texts.append(obj["text"])
                label_sets.append(list(obj["topics"]))
    return Split(texts, label_sets)


def carve_validation(train: Split) -> tuple[Split, Split]:
    """Train part and validation part, by content hash (stable, retweets stay together)."""
    fit, val = Split([], []), Split([], [])
    for text, names in zip(train.texts, train.label_sets, strict=True):
        side = val if split_of(content_hash(text), 0, VALIDATION_PERCENT) == "validation" else fit
        side.texts.append(text)
        side.label_sets.append(names)
    return fit, val


def expand(probs: np.ndarray, model_labels: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Probabilities in ``labels`` order; labels the model does not know score 0."""
    column = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(probs), len(labels)), dtype=np.float32)
    for j, name in enumerate(model_labels):
        out[:, column[name]] = probs[:, j]
    return out


# ----------------------------------------------------------------------------- our recurrent models


def build_vocab(recipe: Recipe, texts: Sequence[str], extra_texts: Sequence[str] = ()) -> Vocabulary:
    """The recipe's vocabulary from the training texts (plus unlabeled ones for wordpieces)."""
    tokens = [tokenize(normalize(t)) for t in texts]
    if recipe.vocab == "wordpiece":
        return build_wordpiece_vocab(tokens + [tokenize(normalize(t)) for t in extra_texts])
    return Vocabulary.build(tokens, min_count=2)


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    # Batches of one exact length, in random order: no padding, so a bidirectional LSTM runs
    # the dense kernel instead of packed sequences (several times faster on CPU).
    batches: list[np.ndarray] = []
    for length in np.unique(lengths):
        rows = rng.permutation(np.flatnonzero(lengths == length))
        batches += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@torch.inference_mode()
def _predict(model: RecurrentClassifier, encoded: Sequence[list[int]]) -> np.ndarray:
    model.eval()
    out = np.zeros((len(encoded), model.config.num_labels), dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    for group in by_length.values():  # one exact length per batch: the dense kernel, no packing
        for start in range(0, len(group), 512):
            rows = group[start : start + 512]
            ids, lengths = pad_batch([encoded[i] for i in rows])
            out[rows] = torch.sigmoid(model(ids, lengths)).numpy()
    return out


def train_recurrent(
    recipe: Recipe,
    fit: Split,
    val: Split,
    seed: int,
    vocab: Vocabulary | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Classifier, float]:
    """Train one model by ``recipe``; keep the epoch with the best validation micro-F1.

    Returns the classifier (thresholds tuned on validation) and the training seconds,
    vocabulary and embedding initialisation included.
    """
    started = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    labels = sorted({name for names in fit.label_sets for name in names})
    vocab = vocab or build_vocab(recipe, fit.texts)
    encode = lambda texts: [vocab.encode_text(t, recipe.max_tokens) for t in texts]  # noqa: E731
    x_fit, x_val = encode(fit.texts), encode(val.texts)
    y_fit, y_val = binarize(fit.label_sets, labels), binarize(val.label_sets, labels)
    config = ModelConfig(
        kind=recipe.kind,
        vocab_size=len(vocab),
        num_labels=len(labels),
        embedding_dim=recipe.embedding_dim,
        hidden_dim=recipe.hidden_dim,
        recurrent_layers=recipe.recurrent_layers,
        linear_layers=recipe.linear_layers,
        dropout=recipe.dropout,
        bidirectional=recipe.bidirectional,
        pooling=recipe.pooling,
        max_tokens=recipe.max_tokens,
    )
    model = build_model(config)
    if recipe.minilm_init:
        init_embeddings_from_minilm(model, vocab)
    if recipe.optimizer == "adamw":
        # No weight decay on the embeddings: rows of wordpieces absent from a batch would
        # shrink towards zero and lose what MiniLM taught them.
        embedding = list(model.embedding.parameters())
        rest = [p for n, p in model.named_parameters() if not n.startswith("embedding.")]
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            [
                {"params": embedding, "weight_decay": 0.0},
                {"params": rest, "weight_decay": recipe.weight_decay},
            ],
            lr=recipe.lr,
        )
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    lengths = np.array([len(x) for x in x_fit])
    targets = torch.from_numpy(y_fit)
    rng = np.random.default_rng(seed)
    best_micro, best_state, best_epoch, stale = -1.0, None, 0, 0
    for epoch in range(recipe.max_epochs):
        model.train()
        for rows in _batches(lengths, recipe.batch_size, rng):
            ids, lens = pad_batch([x_fit[i] for i in rows])
            optimizer.zero_grad()
            loss = loss_fn(model(ids, lens), targets[rows])
            loss.backward()
            if recipe.clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)
            optimizer.step()
        if recipe.patience == 0:
            continue
        micro = score(y_val, _predict(model, x_val), labels)["micro_f1"]
        log(f"    epoch {epoch + 1}: validation micro-F1 {micro:.3f}")
        if micro > best_micro:
            best_micro, best_epoch, stale = micro, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= recipe.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
        log(f"    kept epoch {best_epoch}")
    thresholds = tune_thresholds(y_val, _predict(model, x_val))
    seconds = time.perf_counter() - started
    return Classifier(model, vocab, labels, thresholds, run_id=f"quality-{recipe.kind}-{seed}"), seconds


def artifact_size(classifier: Classifier) -> int:
    """Bytes of the run as the trainer publishes it (weights, vocabulary, config, labels...)."""
    files = run_artifacts(classifier.model, classifier.vocab, classifier.labels, classifier.thresholds, {})
    return sum(len(b) for b in files.values())


def timed_proba(predict: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[np.ndarray, float]:
    """Probabilities and tweets per second (raw text in, tokenization included)."""
    started = time.perf_counter()
    probs = predict(texts)
    return probs, len(texts) / max(time.perf_counter() - started, 1e-9)


def score_pair(
    y_test: np.ndarray, probs: np.ndarray, labels: list[str], thresholds: np.ndarray | float
) -> tuple[dict[str, Any], dict[str, Any]]:
    return score(y_test, probs, labels), score(y_test, probs, labels, thresholds)


def recurrent_row(
    name: str,
    recipe: Recipe,
    fit: Split,
    val: Split,
    test: Split,
    labels: list[str],
    seeds: Sequence[int],
    log: Callable[[str], None],
    vocab_texts: Sequence[str] = (),
) -> Row:
    """Train ``recipe`` once per seed; the row holds each seed's test figures."""
    row = Row(name, [], [], [], [], [], [], [], [], 0)
    y_test = binarize(test.label_sets, labels)
    for seed in seeds:
        log(f"  {name}, seed {seed}")
        started = time.perf_counter()
        vocab = build_vocab(recipe, fit.texts, vocab_texts)
        vocab_seconds = time.perf_counter() - started
        classifier, seconds = train_recurrent(recipe, fit, val, seed, vocab=vocab, log=log)
        classifier.predict_proba(test.texts[:64])  # warm-up: first-call allocations are not speed
        probs, speed = timed_proba(classifier.predict_proba, test.texts)
        probs = expand(probs, classifier.labels, labels)
        thresholds = expand(classifier.thresholds[None, :], classifier.labels, labels)[0]
        thresholds[thresholds == 0] = 0.5
        plain, tuned = score_pair(y_test, probs, labels, thresholds)
        _append(row, plain, tuned, seconds + vocab_seconds, speed)
        row.size_bytes = artifact_size(classifier)
        log(f"    test micro {plain['micro_f1']:.3f} macro {plain['macro_f1']:.3f} P@1 {plain['p_at_1']:.3f}")
    return row


def _append(row: Row, plain: dict[str, Any], tuned: dict[str, Any], seconds: float, speed: float) -> None:
    row.micro.append(plain["micro_f1"])
    row.macro.append(plain["macro_f1"])
    row.p1.append(plain["p_at_1"])
    row.micro_tuned.append(tuned["micro_f1"])
    row.macro_tuned.append(tuned["macro_f1"])
    row.p1_tuned.append(tuned["p_at_1"])
    row.train_seconds.append(seconds)
    row.tweets_per_second.append(speed)


def peer_row(
    peer_factory: Callable[[], Peer], train: Split, fit: Split, val: Split, test: Split, labels: list[str]
) -> Row:
    """Rule-0.5 figures from a peer fitted on all of train; tuned ones from one fitted on the
    train part with thresholds tuned on validation."""
    y_test = binarize(test.label_sets, labels)
    full = peer_factory()
    started = time.perf_counter()
    full.fit(train.texts, train.label_sets, labels)
    seconds = time.perf_counter() - started
    full.predict_proba(test.texts[:64])
    probs, speed = timed_proba(full.predict_proba, test.texts)
    part = peer_factory()
    if isinstance(full, MiniLMPeer) and isinstance(part, MiniLMPeer):
        part.cache, part._encoder = full.cache, full._encoder  # one encoding per tweet
    part.fit(fit.texts, fit.label_sets, labels)
    thresholds = tune_thresholds(binarize(val.label_sets, labels), part.predict_proba(val.texts))
    plain = score(y_test, probs, labels)
    tuned = score(y_test, part.predict_proba(test.texts), labels, thresholds)
    row = Row(full.name, [], [], [], [], [], [], [], [], full.size_bytes())
    _append(row, plain, tuned, seconds, speed)
    return row


# ----------------------------------------------------------------------------- report


def _cell(row: Row, field: str) -> str:
    if len(getattr(row, field)) > 1:
        return f"{row.mean(field):.3f} ± {row.spread(field):.3f}"
    return f"{row.mean(field):.3f}"


def markdown_table(rows: Sequence[Row]) -> str:
    head = (
        "| model | micro-F1 | macro-F1 | P@1 | micro-F1 (tuned) | macro-F1 (tuned) | P@1 (tuned) "
        "| train s | tweets/s | size MB |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r.name} | {_cell(r, 'micro')} | {_cell(r, 'macro')} | {_cell(r, 'p1')} | "
        f"{_cell(r, 'micro_tuned')} | {_cell(r, 'macro_tuned')} | {_cell(r, 'p1_tuned')} | "
        f"{r.mean('train_seconds'):.0f} | {r.mean('tweets_per_second'):.0f} | {r.size_bytes / 1e6:.1f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("micro", "micro-F1"), ("macro", "macro-F1"), ("p1", "P@1")]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(rows), 1)
    for i, row in enumerate(rows):
        xs = np.arange(len(metrics)) + i * width
        ax.bar(
            xs,
            [row.mean(m) for m, _ in metrics],
            width,
            yerr=[row.spread(m) for m, _ in metrics],
            label=row.name,
            capsize=2,
        )
    ax.set_xticks(np.arange(len(metrics)) + width * (len(rows) - 1) / 2)
    ax.set_xticklabels([label for _, label in metrics])
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", default="var/reports/quality", help="folder for quality.md/.json/.png")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per neural row")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap every recipe's epochs")
    parser.add_argument(
        "--skip", default="", help="comma list of rows to skip: rnn,seed,fasttext,minilm,topicxl"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny data, 1 seed, 1 epoch: checks the plumbing"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.threads < 1:
        parser.error("--seeds and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    root = data_dir()
    bench = root / "benchmark"
    if not (bench / "train.jsonl").is_file() or not (bench / "test.jsonl").is_file():
        print(f"benchmark data not found under {bench} (set TWEETDOMAINS_DATA_DIR)", file=sys.stderr)
        return 2
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    train, test = read_benchmark(bench / "train.jsonl"), read_benchmark(bench / "test.jsonl")
    seeds = list(range(args.seeds))
    cap = args.max_epochs
    if args.dry_run:
        train, test = (
            Split(train.texts[:300], train.label_sets[:300]),
            Split(test.texts[:100], test.label_sets[:100]),
        )
        seeds, cap = [0], 1
        skip |= {"minilm", "topicxl"}

    def capped(recipe: Recipe) -> Recipe:
        return recipe if cap is None else replace(recipe, max_epochs=min(cap, recipe.max_epochs))

    fit, val = carve_validation(train)
    # Scored over every label of train or test, as the reference figures are.
    labels = sorted({n for s in (train, test) for names in s.label_sets for n in names})
    print(
        f"benchmark: train {len(fit.texts)} + validation {len(val.texts)}, "
        f"test {len(test.texts)}, {len(labels)} labels"
    )
    started = time.perf_counter()
    rows = [recurrent_row("LSTM (ours)", capped(OURS), fit, val, test, labels, seeds, print)]
    if "rnn" not in skip:
        rows.append(recurrent_row("RNN (ours)", capped(OURS_RNN), fit, val, test, labels, seeds, print))
    print("  peers: TF-IDF + LR")
    rows.append(peer_row(TfidfPeer, train, fit, val, test, labels))
    if "fasttext" not in skip:
        print("  peers: fastText")
        rows.append(peer_row(lambda: FastTextPeer(threads=args.threads), train, fit, val, test, labels))
    if "minilm" not in skip:
        print("  peers: MiniLM + LR")
        rows.append(peer_row(MiniLMPeer, train, fit, val, test, labels))
    if "seed" not in skip:
        rows.append(
            recurrent_row("LSTM (seed recipe)", capped(SEED_RECIPE), fit, val, test, labels, seeds, print)
        )

    xl_rows: list[Row] = []
    if "topicxl" not in skip:
        xl_dir = root / "raw" / "anon7331__tweet_topicXL" / "data" / "en"
        if (xl_dir / "en_train.jsonl").is_file():
            xl_train, xl_val = (
                read_topicxl(xl_dir / "en_train.jsonl"),
                read_topicxl(xl_dir / "en_validation.jsonl"),
            )
            xl_test = read_topicxl(xl_dir / "en_test.jsonl")
            xl_all = Split(xl_train.texts + xl_val.texts, xl_train.label_sets + xl_val.label_sets)
            xl_labels = sorted({n for s in (xl_all, xl_test) for names in s.label_sets for n in names})
            print(
                f"TweetTopicXL: train {len(xl_train.texts)} + validation {len(xl_val.texts)}, "
                f"test {len(xl_test.texts)}"
            )
            xl_rows.append(
                recurrent_row("LSTM (ours)", capped(OURS), xl_train, xl_val, xl_test, xl_labels, seeds, print)
            )
            xl_rows.append(peer_row(TfidfPeer, xl_all, xl_train, xl_val, xl_test, xl_labels))
        else:
            print(f"TweetTopicXL not found under {xl_dir}: skipped")
    total = time.perf_counter() - started

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lstm = rows[0]
    peers = [r for r in rows if r.name in (TfidfPeer.name, FastTextPeer.name, MiniLMPeer.name)]
    minilm = next((r for r in rows if r.name == MiniLMPeer.name), None)
    speed_ratio = (
        lstm.mean("tweets_per_second") / minilm.mean("tweets_per_second") if minilm else float("nan")
    )
    table = markdown_table(rows)
    text = (
        "# Model quality on the benchmark split\n\n"
        f"Test split: {len(test.texts)} tweets, {len(labels)} labels; our models train on "
        f"{len(fit.texts)} tweets and choose epochs and thresholds on {len(val.texts)} validation "
        f"tweets carved from train. Neural rows: mean ± spread over seeds {seeds}. "
        "Untuned columns: p >= 0.5, else the top label; tuned: per-label thresholds fitted on "
        f"validation. Speed: raw tweets/s on CPU, {args.threads} thread(s).\n\n" + table
    )
    if xl_rows:
        text += "\n## TweetTopicXL (English)\n\n" + markdown_table(xl_rows)
    text += f"\nTotal benchmark time {total:.0f} s.\n"
    (out / "quality.md").write_text(text, encoding="utf-8")
    (out / "quality.json").write_text(
        json.dumps(
            {
                "recipe": asdict(OURS),
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
        f"lstm_vs_minilm_speed={speed_ratio:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
