"""Training data at stream scale: today's data path against the sharded one, side by side.

Writes ``--records`` distinct realistic records (1,000,000 by default) as gzip JSONL batches
under ``raw/`` of a local store, then measures, each path in a child process of its own (so
peak memories do not mix):

- today: ``load_dataset`` + ``encode_dataset`` (records as Python objects, one process);
- sharded: ``ShardedCorpus.prepare`` (a process pool tokenizes each batch into a shard once,
  dedupe and split by 8-byte hashes, memory-mapped shards), then the first batch streamed;
- retrain: 5% more records appended as new batches, then ``ShardedCorpus.prepare`` again,
  keeping the vocabulary the cold run built (what ``tweetdomains train`` does without
  ``--refresh-vocab``), so only the new batches are tokenized and encoded.

For each: preparation seconds and CPU seconds (the process and its pool's workers, which it
has reaped by then), peak RSS and seconds to the end of the first training step (a small
LSTM, ``train_step``). Peak RSS is the most the process and all its children (the pool's
workers and multiprocessing's resource tracker) held at once, sampled every 50 ms, or the
process's own peak (``VmHWM``) if that is more; RSS counts the pages of memory-mapped shards a
process has read and, in every process, the shared libraries it touched. The records are real
labeled tweets from ``../shared/data`` (``TWEETDOMAINS_DATA_DIR``), each perturbed with
words and phrases of real unlabeled tweets so texts are distinct, with ~1% retweets and
~0.5% repeated ids (duplicates) and ~3% unlabeled; without the data, template sentences.
The last line is
``records=N prep_s=N baseline_prep_s=N peak_rss_mb=N baseline_peak_rss_mb=N retrain_prep_s=N first_step_s=N``.

    python benchmarks/data_scale.py [--records 1000000] [--batches 50] [--workers 2] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from tweetdomains.store import LocalStore

APPEND_SHARE = 0.05
STARTED = time.perf_counter()  # a measured child's time to its first step counts from here


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("TWEETDOMAINS_DATA_DIR", default))


# ----------------------------------------------------------------------------- the records


def sources() -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(labeled (text, domains) pairs, unlabeled real tweets) from the shared data, or templates."""
    labeled_path = data_dir() / "context_annotations.jsonl"
    eval_dir = data_dir() / "raw" / "cardiffnlp__tweeteval" / "datasets"
    if labeled_path.is_file() and eval_dir.is_dir():
        labeled = []
        with labeled_path.open(encoding="utf-8") as handle:
            for line in handle:
                obj = json.loads(line)
                if obj.get("domains"):
                    labeled.append((str(obj["text"]), [str(d) for d in obj["domains"]]))
        unlabeled = [
            line.strip()
            for path in sorted(eval_dir.glob("*/*_text.txt"))
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.strip()
        ]
        return labeled, unlabeled
    if os.environ.get("CI") == "true":
        raise SystemExit(f"CI=true and no shared data at {data_dir()}")
    topics = {
        "Sport": "match goal team league",
        "Music": "album song concert tour",
        "Food": "pizza recipe chef",
    }
    labeled = [(f"the {w} tonight was great", [d]) for d, words in topics.items() for w in words.split()]
    unlabeled = [f"word{i} thing{i % 97} place{i % 13} moment{i % 7}" for i in range(5000)]
    return labeled, unlabeled


def records(n: int, seed: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` realistic records, ids from ``start``: real labeled text, perturbed to be distinct."""
    labeled, unlabeled = sources()
    words = sorted({w for line in unlabeled[:20000] for w in line.split() if w.isalpha() and len(w) > 2})
    # Without ../shared the stand-in unlabeled lines are all "word12"-like: take the labeled texts' words.
    words = words or sorted({w for text, _ in labeled for w in text.split() if w.isalpha() and len(w) > 2})
    rng = np.random.default_rng([seed, start])
    base = rng.integers(len(labeled), size=n)
    phrase = rng.integers(len(unlabeled), size=n)
    word = rng.integers(len(words), size=(n, 3))
    kind = rng.random(n)
    recent: deque[dict[str, Any]] = deque(maxlen=100)
    for i in range(n):
        text, domains = labeled[base[i]]
        extra = " ".join(unlabeled[phrase[i]].split()[:8])
        tokens = text.split()
        at = int(word[i, 0]) % (len(tokens) + 1)
        tokens[at:at] = [words[word[i, 1]], words[word[i, 2]]]
        record = {
            "id": str(1_500_000_000_000_000_000 + start + i),
            "text": " ".join(tokens) + " " + extra,
            "lang": "en",
            "created_at": None,
            "domains": domains if kind[i] > 0.03 else [],
            "domain_ids": [],
            "entities": [],
        }
        if recent and kind[i] > 0.99:  # a retweet of a recent tweet: a duplicate by content
            record["text"] = "RT @someone: " + recent[int(word[i, 0]) % len(recent)]["text"]
        elif recent and kind[i] > 0.985:  # the stream sent a tweet twice: a duplicate by id
            record = dict(recent[int(word[i, 0]) % len(recent)])
        recent.append(record)
        yield record


def write_batches(store: LocalStore, n: int, batch_size: int, seed: int, start: int, prefix: str) -> int:
    """``n`` records from id ``start`` as batches of ``batch_size``; returns the batches written."""
    import gzip

    stream = records(n, seed, start)
    count = 0
    for first in range(0, n, batch_size):
        size = min(batch_size, n - first)
        lines = "".join(json.dumps(next(stream), ensure_ascii=False) + "\n" for _ in range(size))
        store.put(
            f"raw/{prefix}/{count:04d}.jsonl.gz", gzip.compress(lines.encode(), compresslevel=6, mtime=0)
        )
        count += 1
    return count


# ----------------------------------------------------------------------------- the measured paths


class PeakMemory:
    """Samples this process's RSS plus its children's (the pool's workers) every 50 ms.

    ``ru_maxrss`` cannot tell a worker's own peak: a spawned child keeps the high-water mark
    of the fork it was exec'd from, so every worker would count the parent's memory again.
    """

    def __init__(self) -> None:
        self.peak = self.own = self.children = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            try:
                own = me.memory_info().rss
                children = sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:  # a worker exited between listing and reading
                continue
            self.peak = max(self.peak, (own + children) / 2**20)
            self.own, self.children = max(self.own, own / 2**20), max(self.children, children / 2**20)

    def stop(self) -> tuple[float, float, float]:
        """Peaks of the process and its children together, of the process alone and of its
        children together, MB."""
        self._stop.set()
        self._thread.join()
        own = own_peak_mb()  # exact, between samples too
        return max(self.peak, own), max(self.own, own), self.children


def own_peak_mb() -> float:
    """This process's own peak RSS, MB: ``VmHWM`` where Linux has it, else ``ru_maxrss``.

    ``ru_maxrss`` counts more: ``subprocess`` starts a child with ``vfork``, and the ``exec``
    keeps the high-water mark of the memory it replaces, the benchmark's own (at 10M records
    the writer's arrays, over 1 GB). ``VmHWM`` is that of this process's memory alone.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its children it has waited for."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def first_step(split: Any, rows: np.ndarray, vocab_size: int, num_labels: int) -> float:
    """One training step of a small LSTM on ``split.batch(rows)``; returns the loss."""
    import torch

    from tweetdomains.model import ModelConfig, bce_loss, build_model
    from tweetdomains_trainer.steps import make_optimizer, train_step

    torch.manual_seed(0)
    model = build_model(
        ModelConfig(vocab_size=vocab_size, num_labels=num_labels, embedding_dim=32, hidden_dim=32)
    )
    optimizer = make_optimizer(model, 0.01, 0.0, 1.0)
    return train_step(model, split.batch(rows), optimizer, bce_loss(None, 0.0), torch.device("cpu"))


def child(path: str, store_dir: str, workers: int, batch_size: int, started: float) -> dict[str, Any]:
    """One path in this process: ``prep_s`` counts from after the imports, ``first_step_s``
    from the process's start."""
    store = LocalStore(store_dir)
    memory = PeakMemory()
    if path == "baseline":
        from tweetdomains_trainer.data import encode_dataset, load_dataset, train_batches

        prep_started, cpu_started = time.perf_counter(), cpu_seconds()
        encoded = encode_dataset(load_dataset(store), store, use_cache=False)
        prep, cpu_done = time.perf_counter() - prep_started, cpu_seconds()
        rows = train_batches(encoded.train.lengths, batch_size, np.random.default_rng(0))[0]
        loss = first_step(encoded.train, rows, len(encoded.vocab), len(encoded.labels))
        summary = f"train {len(encoded.train)} validation {len(encoded.validation)} test {len(encoded.test)}"
    else:
        from tweetdomains_trainer.corpus import ShardedCorpus
        from tweetdomains_trainer.stream import stream_batches

        prep_started, cpu_started = time.perf_counter(), cpu_seconds()
        corpus = ShardedCorpus.prepare(store, workers=workers, keep_vocab=True)  # the pool shut down
        prep, cpu_done = time.perf_counter() - prep_started, cpu_seconds()
        rows = next(stream_batches(corpus.train, batch_size, seed=0))
        loss = first_step(corpus.train, rows, len(corpus.vocab), len(corpus.labels))
        summary = corpus.summary()
    first = time.perf_counter() - started
    total, own, children = memory.stop()
    return {
        "prep_s": prep,
        "prep_cpu_s": cpu_done[0] - cpu_started[0],
        "prep_workers_cpu_s": cpu_done[1] - cpu_started[1],
        "first_step_s": first,
        "peak_rss_mb": total,
        "own_rss_mb": own,
        "children_rss_mb": children,
        "loss": loss,
        "summary": summary,
    }


def run_child(path: str, store_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    argv = [
        sys.executable,
        __file__,
        "--child",
        path,
        "--store",
        str(store_dir),
        "--workers",
        str(args.workers),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{path} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"{path:>9}: prep {result['prep_s']:7.1f} s (CPU {result['prep_cpu_s']:.1f} s here + "
        f"{result['prep_workers_cpu_s']:.1f} s in workers), first step at {result['first_step_s']:7.1f} s, "
        f"peak RSS {result['peak_rss_mb']:6.0f} MB with its workers ({result['own_rss_mb']:.0f} alone, "
        f"children at most {result['children_rss_mb']:.0f} together)\n           {result['summary']}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=50, help="raw batches the records are written as")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", help="a store folder to use (kept); default a temporary one")
    parser.add_argument("--skip-baseline", action="store_true", help="measure the sharded path only")
    parser.add_argument("--dry-run", action="store_true", help="2,000 records: checks the benchmark runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.store, args.workers, args.batch_size, STARTED)))
        return
    n = 2_000 if args.dry_run else args.records
    batches = 4 if args.dry_run else args.batches
    store_dir = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="data-scale-"))
    try:
        store = LocalStore(store_dir)
        started = time.perf_counter()
        size = -(-n // batches)
        write_batches(store, n, size, args.seed, 0, "2026/11/01")
        print(
            f"wrote {n:,} records in {batches} batches in {time.perf_counter() - started:.1f} s", flush=True
        )
        # The sharded runs first, then the baseline on the same records (the appended batches
        # taken out again), so a long baseline cannot keep the new path's figures from coming.
        cold = run_child("sharded", store_dir, args)
        extra = max(1, round(n * APPEND_SHARE))
        added = write_batches(store, extra, size, args.seed + 1, n, "2026/11/02")
        print(f"appended {extra:,} records ({APPEND_SHARE:.0%}) in {added} batches", flush=True)
        retrain = run_child("sharded", store_dir, args)
        base = {"prep_s": float("nan"), "peak_rss_mb": float("nan")}
        if not args.skip_baseline:
            for key in list(store.list("raw/2026/11/02/")):
                store.delete(key)
            base = run_child("baseline", store_dir, args)
        if not args.skip_baseline:
            cold_cpu, base_cpu = cold["prep_cpu_s"] + cold["prep_workers_cpu_s"], base["prep_cpu_s"]
            print(
                f"ratios: prep {base['prep_s'] / cold['prep_s']:.1f}x faster ({base_cpu / cold_cpu:.1f}x "
                f"in CPU seconds, {base_cpu:.1f} against {cold_cpu:.1f}), peak RSS "
                f"{base['peak_rss_mb'] / cold['peak_rss_mb']:.1f}x smaller; retrain prep "
                f"{cold['prep_s'] / retrain['prep_s']:.1f}x faster than cold"
            )
        print(
            f"records={n} prep_s={cold['prep_s']:.1f} baseline_prep_s={base['prep_s']:.1f} "
            f"peak_rss_mb={max(cold['peak_rss_mb'], retrain['peak_rss_mb']):.0f} "
            f"baseline_peak_rss_mb={base['peak_rss_mb']:.0f} retrain_prep_s={retrain['prep_s']:.1f} "
            f"first_step_s={cold['first_step_s']:.1f}"
        )
    finally:
        if not args.store:
            shutil.rmtree(store_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
