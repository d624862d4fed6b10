"""The process pool a corpus is prepared in: every per-batch step runs in a worker.

:meth:`corpus.ShardedCorpus.prepare` makes two passes over its batches, each a task per
batch: pass 1 tokenizes every new raw batch into its words shard (:func:`words.tokenize_task`),
pass 2 encodes every words shard not yet encoded with the corpus's vocabulary
(:func:`encode_task`). Between them the parent only merges: the corpus-wide dedupe and split
over the shards' hashes, and the vocabulary from their token counts. The parent reads the
raw batches and writes the shards that come back (the store may be S3, which a worker cannot
be handed); at most two tasks per worker are in flight, so memory stays bounded.

A pool starts (an interpreter per worker, about a second) only for work that outweighs that:
a retrain's few new batches are tokenized and encoded in this process (``POOL_MIN_BYTES``).
After a pass 1 of many batches the pool is closed (:meth:`BatchPool.close`) and pass 2 starts
a fresh one: idle workers keep the heap their tokenizing grew (130 MB for two on the
collector's batches) through the merges, which are the parent's largest moment (at 10M
records, parent 342 MB beside them). A retrain's few batches keep one pool for both passes.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from tweetdomains.store import ObjectNotFound, ObjectStore
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer.shards import (
    ShardCache,
    ShardFile,
    WordShard,
    encode_words,
    encoded_key,
    read_table,
    vocab_dir,
    words_key,
)
from tweetdomains_trainer.words import tokenize_task

log = logging.getLogger(__name__)

Task = TypeVar("Task")
Result = TypeVar("Result")

# Bytes of work (gzip JSONL at ~135 bytes a tweet for pass 1, words shards for pass 2) below
# which a pass runs in this process: about the work of the second a pool takes to start.
POOL_MIN_BYTES = 2 << 20


class BatchPool:
    """``workers`` processes, started on the first pass that needs them, shut down on exit."""

    def __init__(self, workers: int | None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __enter__(self) -> BatchPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the workers, if any: the next :meth:`run` that needs a pool starts a fresh one."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def run(
        self,
        fn: Callable[[Task], Result],
        tasks: Iterable[Task],
        work_bytes: int,
        done: Callable[[Result], None],
    ) -> None:
        """``done(fn(task))`` for every task, in the pool when it runs or ``work_bytes`` calls for
        it (tasks are made as they are sent: at most two per worker at a time), else here."""
        if self._pool is None and (self.workers == 1 or work_bytes < POOL_MIN_BYTES):
            for task in tasks:
                done(fn(task))
            return
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
            self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context)
        pending: set[concurrent.futures.Future[Result]] = set()
        for task in tasks:
            pending.add(self._pool.submit(fn, task))
            if len(pending) >= 2 * self.workers:
                finished, pending = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
                for future in finished:
                    done(future.result())
        for future in concurrent.futures.as_completed(pending):
            done(future.result())


def release_freed_heap() -> None:
    """Give the memory this process has freed back to the system, where the C library keeps it.

    glibc's ``malloc`` keeps freed small blocks in its heap, so the parent's resident memory
    after the merges stays at their high-water mark (about 35 MB over 500 shards of 20k
    records) through pass 2, while the workers are at theirs. ``malloc_trim(0)`` returns
    it; another C library (musl, macOS) has no such call and nothing is done.
    """
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


# ----------------------------------------------------------------------------- pass 2


class VocabFile:
    """The vocabulary as a temporary file a worker loads once (a task names it by path)."""

    def __init__(self, vocab: Vocabulary) -> None:
        fd, name = tempfile.mkstemp(prefix="tweetdomains-vocab-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(vocab.to_json())
        self.path = name
        _VOCABS[name] = vocab  # this process (the in-process pass) needs no load

    def __enter__(self) -> VocabFile:
        return self

    def __exit__(self, *exc: object) -> None:
        _VOCABS.pop(self.path, None)
        Path(self.path).unlink(missing_ok=True)


_VOCABS: dict[str, Vocabulary] = {}  # a worker's vocabularies by file, loaded on first use


def encode_task(args: tuple[str, str, str, int]) -> tuple[str, bytes]:
    """``(raw key, encoded shard)`` of ``(raw key, words shard path, vocabulary file, max
    tokens)``: :func:`shards.encode_words` in a worker."""
    raw_key, path, vocab_path, max_tokens = args
    vocab = _VOCABS.get(vocab_path)
    if vocab is None:
        _VOCABS.clear()  # one corpus's vocabulary at a time
        vocab = _VOCABS[vocab_path] = Vocabulary.from_json(Path(vocab_path).read_text(encoding="utf-8"))
    file = ShardFile(path)
    return raw_key, encode_words(WordShard(raw_key, file, read_table(file, "labels")), vocab, max_tokens)


def encode_tasks(
    shards: Iterable[WordShard], vocab_file: VocabFile, max_tokens: int
) -> Iterator[tuple[str, str, str, int]]:
    for shard in shards:
        yield shard.key, str(shard.file.path), vocab_file.path, max_tokens


def words_bytes(shards: Iterable[WordShard]) -> int:
    return sum(shard.file.path.stat().st_size for shard in shards)


def raw_tasks(store: ObjectStore, keys: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """``(key, bytes)`` of each raw batch, read as it is sent."""
    for key in keys:
        yield key, store.get(key)


# ----------------------------------------------------------------------------- the passes


def tokenize_new(store: ObjectStore, cache: ShardCache, keys: Sequence[str], pool: BatchPool) -> int:
    """Pass 1: each of ``keys`` tokenized into its words shard, in the pool (a few small
    batches, a retrain's, here: see ``POOL_MIN_BYTES``)."""
    few = {key: store.get(key) for key in keys} if len(keys) <= 2 * pool.workers else None
    work = sum(len(data) for data in few.values()) if few is not None else POOL_MIN_BYTES
    tasks = iter(few.items()) if few is not None else raw_tasks(store, keys)

    def done(result: tuple[str, bytes]) -> None:
        cache.put(words_key(result[0]), result[1])

    pool.run(tokenize_task, tasks, work, done)
    if few is None:  # many batches: the workers' grown heaps would sit idle through the merges
        pool.close()
    return len(keys)


def encode_shards(
    cache: ShardCache, shards: Sequence[WordShard], vocab: Vocabulary, max_tokens: int, pool: BatchPool
) -> tuple[list[ShardFile], int]:
    """Pass 2: each shard encoded with ``vocab`` (those not encoded yet, or damaged, in the
    pool), and how many were encoded now."""
    directory = vocab_dir(vocab, max_tokens)
    keys = {shard.key: encoded_key(shard.key, vocab, max_tokens, directory) for shard in shards}
    files: dict[str, ShardFile] = {}
    todo = []
    for shard in shards:
        try:
            files[shard.key] = cache.open(keys[shard.key])
            continue
        except ObjectNotFound:
            pass
        except (ValueError, OSError) as exc:  # a damaged shard is encoded again
            log.warning("re-encoding unreadable shard %s: %s", keys[shard.key], exc)
        todo.append(shard)

    def done(result: tuple[str, bytes]) -> None:
        cache.put(keys[result[0]], result[1])
        files[result[0]] = cache.open(keys[result[0]])

    if todo:
        with VocabFile(vocab) as vocab_file:
            pool.run(encode_task, encode_tasks(todo, vocab_file, max_tokens), words_bytes(todo), done)
    return [files[shard.key] for shard in shards], len(todo)
