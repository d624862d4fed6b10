"""Training throughput: our data path against a faithful re-implementation of the original's.

Both train the same LSTM (embedding 200, hidden 100, 2 layers, dropout 0.3, a 2-layer ReLU
head, Adam lr 0.01) on the benchmark train split, for the same epochs with the same batch
size, on this machine, one after the other:

- original: a per-item Python ``Dataset`` whose ``__getitem__`` normalizes, tokenizes,
  encodes and front-pads each tweet to 256 tokens; one label per tweet (the first domain);
  ``CrossEntropyLoss``; a ``DataLoader`` with ``shuffle=True``; the LSTM reads all 256 steps.
- ours: every tweet encoded once into flat arrays (included in our time), length-bucketed
  batches padded to their own longest tweet, packed sequences, every label, BCE-with-logits.

A third row, ``shipped``, times the epochs of the recipe ``tweetdomains train`` trains by default
(:data:`~tweetdomains_trainer.recipes.DEFAULT_RECIPE`: MiniLM wordpieces, BiLSTM, EMA) through
the trainer's own :class:`~tweetdomains_trainer.phase.TrainingPhase`, with its own batch size, on
the split left after the trainer's validation carve-out (encoding and MiniLM loading not timed).

Prints tweets/s for each and their ratio; the last line is
``ours_tweets_per_s=N original_tweets_per_s=N ratio=N shipped_tweets_per_s=N``. ``--dry-run``
runs one batch of each on a few tweets (synthetic ones where the benchmark split is absent).

    python benchmarks/training.py [--epochs 1] [--batch-size 64] [--threads N] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from tweetdomains.model import ModelConfig, build_model
from tweetdomains.settings import data_dir
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains.text import normalize, tokenize
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer.data import encode_split, train_batches
from tweetdomains_trainer.distributed import Distributed
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.phase import TrainingPhase
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.recipes import DEFAULT_RECIPE, RECIPES
from tweetdomains_trainer.steps import make_optimizer, train_step
from tweetdomains_trainer.train import prepare_data

EMBEDDING, HIDDEN, LAYERS, DROPOUT, LR = 200, 100, 2, 0.3, 0.01
ORIGINAL_LENGTH = 256


def load(path: Path) -> tuple[list[str], list[list[str]]]:
    texts, labels = [], []
    with path.open(encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            if obj.get("domains"):
                texts.append(obj["text"])
                labels.append(list(obj["domains"]))
    return texts, labels


# ----------------------------------------------------------------------------- the original's way


class OriginalDataset(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Per item: tokenize, encode, front-pad to 256; the label is the tweet's first domain."""

    def __init__(self, texts: list[str], labels: list[list[str]], vocab: Vocabulary, names: list[str]):
        self.texts, self.vocab = texts, vocab
        index = {n: i for i, n in enumerate(names)}
        self.targets = [index[ls[0]] for ls in labels]

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.vocab.encode(tokenize(normalize(self.texts[i])))[:ORIGINAL_LENGTH]
        padded = [0] * (ORIGINAL_LENGTH - len(ids)) + ids
        return torch.tensor(padded, dtype=torch.long), torch.tensor(self.targets[i], dtype=torch.long)


class OriginalLSTM(nn.Module):
    """Embedding -> 2-layer LSTM over all 256 steps -> last step -> Linear-ReLU-Linear."""

    def __init__(self, vocab_size: int, num_labels: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, EMBEDDING)
        self.lstm = nn.LSTM(EMBEDDING, HIDDEN, num_layers=LAYERS, batch_first=True, dropout=DROPOUT)
        self.head = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, num_labels))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(self.embedding(ids))
        return self.head(output[:, -1, :])


def run_original(
    texts: list[str],
    labels: list[list[str]],
    vocab: Vocabulary,
    names: list[str],
    epochs: int,
    batch: int,
    max_batches: int | None = None,
) -> float:
    torch.manual_seed(0)
    model = OriginalLSTM(len(vocab), len(names))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(OriginalDataset(texts, labels, vocab, names), batch_size=batch, shuffle=True)
    started = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for i, (ids, target) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            optimizer.zero_grad()
            loss = loss_fn(model(ids), target)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- ours


def run_ours(
    texts: list[str],
    labels: list[list[str]],
    vocab: Vocabulary,
    names: list[str],
    epochs: int,
    batch: int,
    max_batches: int | None = None,
) -> float:
    torch.manual_seed(0)
    config = ModelConfig(
        kind="lstm",
        vocab_size=len(vocab),
        num_labels=len(names),
        embedding_dim=EMBEDDING,
        hidden_dim=HIDDEN,
        recurrent_layers=LAYERS,
        linear_layers=2,
        dropout=DROPOUT,
        bidirectional=False,
        pooling="last",
    )
    model = build_model(config)
    optimizer = make_optimizer(model, LR)
    loss_fn = nn.BCEWithLogitsLoss()
    device = torch.device("cpu")
    started = time.perf_counter()
    split = encode_split([tokenize(normalize(t)) for t in texts], labels, vocab, names, config.max_tokens)
    for epoch in range(epochs):
        model.train()
        batches = train_batches(split.lengths, batch, np.random.default_rng([0, epoch]))
        for rows in batches[:max_batches]:
            train_step(model, split.batch(rows), optimizer, loss_fn, device)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- the shipped recipe


def run_shipped(path: Path, epochs: int, dry_run: bool) -> tuple[float, int, TrainOptions]:
    """Seconds and tweets of ``epochs`` training passes of the default recipe, as ``train`` runs
    them (the trainer's validation carve-out held back; encoding and MiniLM loading untimed)."""
    with tempfile.TemporaryDirectory() as folder:
        options = TrainOptions(
            **{
                **RECIPES[DEFAULT_RECIPE],
                "data": [str(path)],
                "store": folder,
                "test_percent": 0,
                "validation_percent": 15,
                "publish": False,
                "progress": False,
                "dry_run": dry_run,
            }
        )
        encoded = prepare_data(options, LocalStore(folder), Progress(False))
        torch.manual_seed(0)
        device, dist, quiet = torch.device("cpu"), Distributed.from_env(), Progress(False)
        phase = TrainingPhase.start(options, encoded, encoded.train, None, True, dist, device)
        started = time.perf_counter()
        batches = 0
        for epoch in range(epochs):
            batches += len(phase.run_epoch(options, encoded.train, epoch, dist, device, quiet, "epoch"))
        seconds = time.perf_counter() - started
    tweets = len(encoded.train) * epochs if not dry_run else batches * options.batch_size
    return seconds, tweets, options


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--dry-run", action="store_true", help="one batch of each row on a few tweets")
    args = parser.parse_args()
    path = data_dir() / "benchmark" / "train.jsonl"
    folder = tempfile.TemporaryDirectory()
    if args.dry_run:
        if not path.is_file():
            path = Path(folder.name) / "synthetic.jsonl"
            path.write_text("".join(r.to_json() + "\n" for r in generate(256, seed=0)), encoding="utf-8")
        args.epochs = 1
    elif not path.is_file():
        print(f"benchmark data not found at {path} (set TWEETDOMAINS_DATA_DIR)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    texts, labels = load(path)
    if args.dry_run:
        texts, labels = texts[: 2 * args.batch_size], labels[: 2 * args.batch_size]
    max_batches = 1 if args.dry_run else None
    vocab = Vocabulary.build((tokenize(normalize(t)) for t in texts), min_count=2)
    names = sorted({d for ls in labels for d in ls})
    n = len(texts) * args.epochs
    lengths = [len(vocab.encode_text(t, 64)) for t in texts]
    print(
        f"{len(texts)} tweets, {len(names)} labels, vocabulary {len(vocab)}, "
        f"mean length {np.mean(lengths):.1f} tokens; LSTM emb {EMBEDDING} hidden {HIDDEN} x{LAYERS}; "
        f"{args.epochs} epoch(s), batch {args.batch_size}, {torch.get_num_threads()} torch threads",
        flush=True,
    )
    if args.dry_run:
        n = args.batch_size
    else:
        # Warm-up (untimed): the first LSTM calls of a process pay one-off kernel set-up costs.
        warm = slice(0, 2 * args.batch_size)
        run_ours(texts[warm], labels[warm], vocab, names, 1, args.batch_size)
        run_original(texts[warm], labels[warm], vocab, names, 1, args.batch_size)
    ours = run_ours(texts, labels, vocab, names, args.epochs, args.batch_size, max_batches)
    print(f"ours:     {ours:8.1f} s  {n / ours:10.1f} tweets/s", flush=True)
    original = run_original(texts, labels, vocab, names, args.epochs, args.batch_size, max_batches)
    print(f"original: {original:8.1f} s  {n / original:10.1f} tweets/s", flush=True)
    shipped, shipped_tweets, options = run_shipped(path, args.epochs, args.dry_run)
    shipped_rate = shipped_tweets / shipped
    print(
        f"shipped:  {shipped:8.1f} s  {shipped_rate:10.1f} tweets/s  (--recipe {DEFAULT_RECIPE}: "
        f"{options.vocab} {options.embedding_dim}/{options.hidden_dim}, batch {options.batch_size})",
        flush=True,
    )
    ours_rate, original_rate = n / ours, n / original
    print(
        f"ours_tweets_per_s={ours_rate:.1f} original_tweets_per_s={original_rate:.1f} "
        f"ratio={ours_rate / original_rate:.2f} shipped_tweets_per_s={shipped_rate:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
