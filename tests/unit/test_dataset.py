"""Dataset build: dedup, and a split that never moves a tweet as data is appended."""

from __future__ import annotations

from pathlib import Path

from tweetdomains import codecs
from tweetdomains.dataset import build_dataset, store_records
from tweetdomains.records import Record
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore


def _sides(records: list[Record]) -> dict[str, str]:
    data = build_dataset(records)
    return {r.text: side for side in ("train", "validation", "test") for r in getattr(data, side)}


def test_split_is_stable_when_data_is_appended() -> None:
    first = generate(2000, seed=1)
    more = generate(3000, seed=2)
    before = _sides(first)
    after = _sides(first + more)
    assert before, "some records were kept"
    assert all(after[text] == side for text, side in before.items())


def test_split_proportions_are_about_80_20_with_validation_carved_from_train() -> None:
    data = build_dataset(generate(5000, seed=3))
    total = len(data.train) + len(data.validation) + len(data.test)
    assert 0.16 < len(data.test) / total < 0.24
    assert 0.07 < len(data.validation) / total < 0.13


def test_retweets_of_one_text_never_straddle_and_duplicates_are_dropped() -> None:
    base = Record(text="Great match for Arsenal tonight https://t.co/a", domains=("Sport",), id="1")
    retweet = Record(text="RT @fan: Great match for Arsenal tonight!", domains=("Sport",), id="2")
    same_id = Record(text="something else entirely", domains=("Sport",), id="1")
    unlabeled = Record(text="no labels here", id="3")
    data = build_dataset([base, retweet, same_id, unlabeled])
    assert data.duplicates_by_id == 1
    assert data.duplicates_by_content == 1
    assert data.unlabeled == 1
    assert len(data.train) + len(data.validation) + len(data.test) == 1


def test_build_from_store_batches_counts_bad_lines(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    records = generate(300, seed=4)
    store.put("raw/2026/11/29/01/a.jsonl.gz", codecs.write_jsonl_gz(records[:150]))
    store.put("raw/2026/11/29/02/b.jsonl.gz", codecs.write_jsonl_gz(records[150:]))
    import gzip

    store.put(
        "raw/2026/11/29/03/c.jsonl.gz",
        gzip.compress(b'{"text": 5}\nnot json\n' + records[0].to_json().encode()),
    )
    stats = codecs.ParseStats()
    data = build_dataset(store_records(store, stats), stats)
    assert stats.bad_lines == 2
    labeled = {r.text for r in records if r.domains}
    kept = {r.text for side in (data.train, data.validation, data.test) for r in side}
    assert kept <= labeled
    assert "records read" in data.summary()
