"""A corpus's vocabulary from its words shards, counted in arrays, not in a dict of strings.

``Vocabulary.build`` and ``build_wordpiece_vocab`` count tokens in Python dicts keyed by the
token strings, about 135 bytes per distinct token (measured: a million tokens and their
counts), and the distinct tokens of a stream keep growing with it (names, hashtags, typos).
Both tables are made here from per-shard counts in numpy arrays, 16 bytes per distinct
token, and they are the same tables:

- ``word``: each shard's distinct train tokens are counted under an 8-byte hash of their
  string (Python's ``hash``, stable within this process, the only place the hashes live), and
  the ``(hash, count)`` pairs are merged by sorting: 16 bytes per distinct token. The hashes
  the table keeps (seen ``min_count`` times, most frequent first, cut at ``max_vocab``, with
  every token tied at the cut) are then known; a second pass over the shards finds their
  strings, which also sorts the ties by token as ``Vocabulary.build`` does. Two different
  train tokens with one hash (about one chance in 30 million at a million distinct tokens) would
  share a count: the second pass would see both strings, and the table is then counted again
  by string, so the result is exact either way.
- ``wordpiece``: the words' hashed counts as above, then a second pass splits each distinct
  word into MiniLM's pieces once, where it is first met, and adds its corpus count to each of
  its pieces, in one array over the ~30k pieces. Two words with one hash would count the
  second's occurrences under the first's pieces (a piece then kept or dropped differently
  only if that moved its count across ``min_count``); at the odds above this is not checked.

Measured on the 10M-record benchmark corpus (500 shards, 101,439 distinct train tokens, 2
shared cores): the word table in 22.2 s against 14.6 s by string (a second pass over the
shards), the wordpiece table in 18.6 s against 41.6 s (each word split once, not once per
occurrence); there the corpus has few distinct tokens, and both ways hold about the same
memory.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np

from tweetdomains.vocab import PAD, UNK, Vocabulary
from tweetdomains_trainer.shards import WordShard

log = logging.getLogger(__name__)

# Pairs gathered before a merge (at least as many as the merged table holds, so merges stay
# linear in the corpus): 16 bytes each.
MERGE_ROWS = 1 << 20


def shard_vocab(
    shards: Sequence[WordShard],
    codes: Sequence[np.ndarray],
    train_code: int,
    kind: str,
    min_count: int,
    max_vocab: int,
) -> Vocabulary:
    """``build_vocab(kind, min_count, max_vocab)`` over the rows whose code is ``train_code``."""
    if kind == "wordpiece":
        return _wordpiece_vocab(shards, codes, train_code, min_count)
    if kind != "word":
        raise ValueError(f"unknown vocabulary kind {kind!r}: word or wordpiece")
    vocab = _word_vocab(shards, codes, train_code, min_count, max_vocab)
    if vocab is None:
        log.info("two train tokens share a hash: counting the vocabulary by string")
        vocab = _word_vocab_by_string(shards, codes, train_code, min_count, max_vocab)
    return vocab


def token_hashes(tokens: Sequence[str]) -> np.ndarray:
    """An 8-byte hash of each token (int64), the same for a string throughout this process."""
    return np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens))


def _train_tokens(
    shards: Sequence[WordShard], codes: Sequence[np.ndarray], train_code: int
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Each shard's token table and every token's count over the shard's train rows."""
    for shard, code in zip(shards, codes, strict=True):
        tokens = shard.tokens
        in_train = np.repeat(code == train_code, shard.lengths)
        yield tokens, np.bincount(np.asarray(shard.file["token_ids"])[in_train], minlength=len(tokens))
        shard.file.release()


class _HashCounts:
    """Counts summed by key, as sorted unique keys and their totals (int64 arrays)."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.totals = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self._pending.append((keys, counts.astype(np.int64, copy=False)))
        self._pending_rows += len(keys)
        if self._pending_rows >= max(len(self.keys), MERGE_ROWS):
            self._merge()

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        self._merge()
        return self.keys, self.totals

    def _merge(self) -> None:
        keys = np.concatenate([self.keys, *(k for k, _ in self._pending)])
        totals = np.concatenate([self.totals, *(c for _, c in self._pending)])
        self._pending, self._pending_rows = [], 0
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        keys, totals = keys[order], totals[order]
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        self.keys, self.totals = keys[starts], np.add.reduceat(totals, starts)


def _hashed_counts(
    shards: Sequence[WordShard], codes: Sequence[np.ndarray], train_code: int
) -> tuple[np.ndarray, np.ndarray]:
    """The train tokens' hashes (sorted, unique) and their counts over the corpus."""
    counted = _HashCounts()
    for tokens, used in _train_tokens(shards, codes, train_code):
        seen = np.flatnonzero(used)
        counted.add(token_hashes(tokens)[seen], used[seen])
    return counted.result()


def _word_vocab(
    shards: Sequence[WordShard], codes: Sequence[np.ndarray], train_code: int, min_count: int, max_vocab: int
) -> Vocabulary | None:
    """``Vocabulary.build``'s table from hashed counts; None when two train tokens share a hash."""
    keys, totals = _hashed_counts(shards, codes, train_code)
    keep = max_vocab - 2
    if keep <= 0:
        return Vocabulary((PAD, UNK))
    wanted = np.flatnonzero(totals >= min_count)
    if len(wanted) > keep:  # the keep-th largest count, and every token tied with it
        cutoff = np.partition(totals[wanted], len(wanted) - keep)[len(wanted) - keep]
        wanted = wanted[totals[wanted] >= cutoff]
    count_of = dict(zip(keys[wanted].tolist(), totals[wanted].tolist(), strict=True))
    wanted_keys, names = keys[wanted], dict[int, str]()
    for tokens, used in _train_tokens(shards, codes, train_code):
        hashes = token_hashes(tokens)
        for i in np.flatnonzero((used > 0) & np.isin(hashes, wanted_keys)).tolist():
            if names.setdefault(int(hashes[i]), tokens[i]) != tokens[i]:
                return None
    kept = sorted(names.items(), key=lambda item: (-count_of[item[0]], item[1]))
    return Vocabulary((PAD, UNK, *(name for _, name in kept[:keep])))


def _word_vocab_by_string(
    shards: Sequence[WordShard], codes: Sequence[np.ndarray], train_code: int, min_count: int, max_vocab: int
) -> Vocabulary:
    """``Vocabulary.build``'s table from counts keyed by the token strings."""
    counts: Counter[str] = Counter()
    for tokens, used in _train_tokens(shards, codes, train_code):
        seen = np.flatnonzero(used)
        counts.update(dict(zip((tokens[i] for i in seen.tolist()), used[seen].tolist(), strict=True)))
    # Counter.update adds a mapping's counts: one "text" holding every count builds the table.
    return Vocabulary.build([counts], min_count=min_count, max_size=max_vocab)


def _wordpiece_vocab(
    shards: Sequence[WordShard], codes: Sequence[np.ndarray], train_code: int, min_count: int
) -> Vocabulary:
    """``build_wordpiece_vocab``'s table: each distinct train word split into pieces once, its
    pieces counted as often as the corpus has the word."""
    from tweetdomains.minilm import PretrainedError, build_wordpiece_vocab, keep_used_pieces

    try:
        full = build_wordpiece_vocab()
    except PretrainedError as exc:
        raise ValueError(f"--vocab wordpiece: {exc}") from None
    keys, word_totals = _hashed_counts(shards, codes, train_code)
    split = np.zeros(len(keys), dtype=bool)  # words already split into their pieces
    totals = np.zeros(len(full), dtype=np.int64)
    for tokens, used in _train_tokens(shards, codes, train_code):
        seen = np.flatnonzero(used)
        at = np.searchsorted(keys, token_hashes(tokens)[seen])
        first = ~split[at]
        split[at[first]] = True
        pieces = [full.encode([tokens[i]]) for i in seen[first].tolist()]
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        ids = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=int(lengths.sum()))
        weights = np.repeat(word_totals[at[first]], lengths)  # counts well under 2**53: exact
        totals += np.bincount(ids, weights=weights, minlength=len(full)).astype(np.int64)
    return keep_used_pieces(full, totals, min_count)
