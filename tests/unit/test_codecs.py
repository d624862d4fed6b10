"""The codecs on the real files under the shared data folder and on hand-made bad input.

The real files are read by path (``TWEETDOMAINS_DATA_DIR``); the numbers asserted here were
measured on them, so a change in any of them means a parser changed behaviour.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from tweetdomains import codecs
from tweetdomains.codecs import ParseStats
from tweetdomains.records import Record

RAW = "raw"
LEGACY_GLOB = "raw/Isaac1o__tweet_domain_classification/data/DeepLearningTweetStream-*"
NOT_API = ("anon7331__tweet_topicXL", "cardiffnlp__tweeteval", "Isaac1o__tweet_domain_classification")


def _legacy_file(shared_data: Path) -> Path:
    matches = sorted(shared_data.glob(LEGACY_GLOB))
    assert len(matches) == 1
    return matches[0]


def _read(path: Path) -> tuple[list[Record], ParseStats]:
    stats = ParseStats()
    return list(codecs.iter_records(path, stats)), stats


def _api_files(shared_data: Path) -> list[Path]:
    files = []
    for path in sorted((shared_data / RAW).rglob("*")):
        if not path.is_file() or path.suffix == ".csv" or path.name == "MANIFEST.json":
            continue
        if any(part in path.parts for part in NOT_API):
            continue
        files.append(path)
    return files


# --------------------------------------------------------------------------- real API files


def test_every_api_and_twarc_file_parses(shared_data: Path) -> None:
    files = _api_files(shared_data)
    assert len(files) == 166
    total = ParseStats()
    records = 0
    annotated = 0
    for path in files:
        stats = ParseStats()
        for record in codecs.iter_records(path, stats):
            records += 1
            annotated += bool(record.domains)
            assert len(record.domain_ids) == len(record.domains)
            assert list(record.domains) == sorted(set(record.domains))
        assert stats.records > 0 or path.name == "users.jsonl", path  # twarc-csv's users.jsonl: user objects
        total.merge(stats)
    assert (records, annotated) == (23506, 10370)
    assert total.records == records
    # The one bad line: streaming_output_with_error.jsonl ends with a cut-off message.
    assert total.bad_lines == 1
    assert total.skipped == {"api_error": 170, "bad_json": 1, "no_text": 96, "unknown_shape": 7}


def test_twarc_jsonl_counts(shared_data: Path) -> None:
    records, stats = _read(shared_data / RAW / "QUT-Digital-Observatory__tweetexploR" / "auspol.jsonl")
    assert len(records) == 1000
    assert sum(1 for r in records if r.domains) == 990
    assert stats.lines == 10
    assert stats.skipped == {"api_error": 2}
    assert all(r.id and r.lang and r.created_at for r in records)


def test_flattened_twarc_retweet_takes_the_inlined_full_text(shared_data: Path) -> None:
    path = shared_data / RAW / "DocNow__twarc-csv" / "test-data" / "flat.jsonl"
    assert codecs.detect_format(path.read_text(encoding="utf-8").splitlines()[0]) == "tweet"
    records, stats = _read(path)
    assert (len(records), sum(1 for r in records if r.domains)) == (100, 98)
    assert stats.bad_lines == 0
    retweet = next(r for r in records if r.id == "1380242566176727042")
    assert retweet.text.startswith('PSAKI: Pres. Biden and fmr. Pres. Obama "talk regularly')
    assert retweet.text.endswith('We keep them private." https://t.co/v8iK4eopCJ')
    assert retweet.domains == ("Person", "Politician")
    assert retweet.domain_ids == ("10", "35")
    assert retweet.entities == ("Barack Obama", "Joe Biden")


def test_retweet_text_comes_from_includes(shared_data: Path) -> None:
    path = shared_data / RAW / "DocNow__twarc-hashtags" / "test-data" / "tweets1.jsonl"
    payload = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    own = next(t for t in payload["data"] if t["id"] == "1374396236984291339")
    assert own["text"].startswith("RT @kylegriffin1: ") and own["text"].endswith("…")
    records = {r.id: r for r in codecs.iter_records(path)}
    retweet = records["1374396236984291339"]
    assert retweet.text.startswith('President Obama: "We can make it harder')
    assert retweet.text.endswith('We can, and we must."')
    assert "…" not in retweet.text
    assert retweet.lang == own["lang"]
    # This retweet has no annotations of its own: it borrows the retweeted tweet's.
    borrowed = records["1374396227689750537"]
    assert borrowed.domains == ("Person", "Politician")
    assert borrowed.text.startswith("I respectfully ask US Customs and Border Protection")


def test_pretty_printed_json_document(shared_data: Path) -> None:
    path = (
        shared_data
        / RAW
        / "jpopesculian__twitter-v2-rs"
        / "fixtures"
        / "data"
        / "tweet"
        / "example_retweet.json"
    )
    records, stats = _read(path)
    assert stats.lines == 1 and stats.bad_lines == 0
    [record] = records
    assert record.id == "1229851574555508737"
    assert record.text.startswith("I built an Alexa Skill for Twitter using APL")
    assert record.text.endswith("Check it out here 👇\n\nhttps://t.co/l5J8wq748G")
    assert record.domains == ("Brand", "Brand Category", "Product")
    assert record.domain_ids == ("47", "46", "48")


def test_includes_object_saved_alone(shared_data: Path) -> None:
    path = (
        shared_data
        / RAW
        / "cjbarrie__academictwitteR"
        / "tests"
        / "testdata"
        / "hk3"
        / "users_1405589018948026377.json"
    )
    assert codecs.detect_format(path.read_text(encoding="utf-8")) == "api"
    records, _ = _read(path)
    assert (len(records), sum(1 for r in records if r.domains)) == (192, 83)


def test_export_with_string_annotations_and_renamed_domain(shared_data: Path) -> None:
    # stream-building-ux saved "context_annotations" as a JSON string and "text" as "html".
    path = shared_data / RAW / "andrepology__stream-building-ux" / "public" / "json" / "-1.json"
    records = {r.id: r for r in codecs.iter_records(path)}
    assert len(records) == 260
    record = records["1596051307441573890"]
    assert record.domains == ("Brand Category",)  # sent as "Business Taxonomy"
    assert record.text.startswith("Archer's thumb ring") and "Museum\n\nDetailed Post" in record.text


def test_error_payloads_are_counted_not_records(shared_data: Path) -> None:
    records, stats = _read(shared_data / RAW / "DocNow__twarc-csv" / "test-data" / "streaming_output.jsonl")
    assert len(records) == 8
    assert stats.lines == 9
    assert stats.skipped == {"api_error": 1}
    assert stats.bad_lines == 0

    stats = ParseStats()
    payload = {"errors": [{"title": "ConnectionException", "detail": "too many connections"}, {"title": "x"}]}
    assert codecs.parse_payload(payload, stats) == []
    assert stats.skipped == {"api_error": 2}
    assert codecs.detect_format(payload) == "api"


def test_cut_off_message_is_a_bad_line(shared_data: Path) -> None:
    path = shared_data / RAW / "DocNow__twarc-csv" / "test-data" / "streaming_output_with_error.jsonl"
    records, stats = _read(path)
    assert len(records) == 7
    assert stats.bad_lines == 1 and stats.skipped == {"bad_json": 1}


# --------------------------------------------------------------------------- normalized files


def test_tweettopicxl_topics_are_the_labels(shared_data: Path) -> None:
    records, stats = _read(shared_data / RAW / "anon7331__tweet_topicXL" / "data" / "en" / "en_train.jsonl")
    assert len(records) == 180 and stats.bad_lines == 0
    assert all(r.domains for r in records)
    assert records[0].domains == ("Film, TV & Video", "News & Social Concern")
    assert records[0].id == "1539669293213687808"
    assert len({d for r in records for d in r.domains}) <= 19


def test_tweettopicxl_float_ids_are_dropped_not_the_tweets(shared_data: Path) -> None:
    records, stats = _read(shared_data / RAW / "anon7331__tweet_topicXL" / "data" / "es" / "es_train.jsonl")
    assert len(records) == 180 and stats.bad_lines == 0
    assert stats.repaired == {"lossy_id": 180}
    assert all(r.id is None for r in records)


def test_benchmark_and_dataset_files(shared_data: Path) -> None:
    train, stats = _read(shared_data / "benchmark" / "train.jsonl")
    assert len(train) == 4692 and stats.bad_lines == 0
    test, _ = _read(shared_data / "benchmark" / "test.jsonl")
    assert len(test) == 1128
    assert all(r.domains for r in train)


# --------------------------------------------------------------------------- legacy format


def test_legacy_file_decodes_1172_records(shared_data: Path) -> None:
    path = _legacy_file(shared_data)
    assert codecs.detect_format(path.read_text(encoding="utf-8").splitlines()[0]) == "legacy"
    records, stats = _read(path)
    assert len(records) == 1172
    assert stats.bad_lines == 0 and stats.skipped == {} and stats.repaired == {}
    first = records[0]
    assert first.domains == ("Music Genre", "Musician", "Person")
    assert first.domain_ids == ("55", "54", "10")
    assert first.text.startswith("— NCT Dream / NCT 127 KSPO Dome Concert on July\n— NCT 127")
    assert first.text.endswith("hmmmmm… 👀👀👀 https://t.co/SFBK39qxLO")
    assert records[1].text == "@choicebsangkwan let's hope it's true 😭\nhttps://t.co/Jz0dU5Z75v"
    assert all(r.domains for r in records)
    # Old names in the file come out canonical.
    names = {d for r in records for d in r.domains}
    assert "Google Product Taxonomy" not in names and "Product Taxonomy" in names
    assert "Video Game Personality" in names and "Esports Team" not in names


def test_legacy_round_trip_on_the_real_file(shared_data: Path) -> None:
    path = _legacy_file(shared_data)
    lines = path.read_text(encoding="utf-8").splitlines()
    records, _ = _read(path)
    written = [codecs.format_legacy_line(r) for r in records]
    again = [codecs.parse_legacy_line(line) for line in written]
    assert again == records
    for original, line in zip(lines, written, strict=True):
        # The bytes literal comes out byte for byte (labels come out canonical and sorted).
        literal = line[: line.index(codecs.LEGACY_SEPARATOR)]
        assert original.startswith(literal + codecs.LEGACY_SEPARATOR)


@pytest.mark.parametrize(
    "raw",
    [
        b"plain",
        b"it's",
        b'say "hi"',
        b"both ' and \"",
        b"back\\slash",
        b"\x00\x01\x7f\x80\xff\t\n\r",
        "caf\u00e9 \U0001f600 \u2014".encode(),
        bytes(range(256)),
    ],
)
def test_bytes_literal_decoder_inverts_repr(raw: bytes) -> None:
    decoded, end = codecs.decode_bytes_literal(repr(raw) + "<COMMA>Person")
    assert decoded == raw
    assert end == len(repr(raw))


def test_bytes_literal_octal_and_unknown_escapes() -> None:
    assert codecs.decode_bytes_literal(r"b'\101\0\7'")[0] == b"A\x00\x07"
    assert codecs.decode_bytes_literal(r"b'\q'")[0] == b"\\q"


@pytest.mark.parametrize(
    "line",
    ["b'unterminated", r"b'bad \xZZ escape'", "b'ok'garbage<COMMA>Person", "x'not bytes'", "b'", r"b'\x4"],
)
def test_bad_legacy_lines_raise_legacy_format_error(line: str) -> None:
    with pytest.raises(codecs.LegacyFormatError):
        codecs.parse_legacy_line(line)


def test_legacy_invalid_utf8_is_replaced_and_counted() -> None:
    stats = ParseStats()
    record = codecs.parse_legacy_line(r"b'caf\xc3'<COMMA>Food", stats)
    assert record.text == "caf\ufffd"
    assert record.domains == ("Food",) and record.domain_ids == ("152",)
    assert stats.repaired == {"utf8_replaced": 1}


def test_legacy_writer_format() -> None:
    record = Record(text="it's 🎵\nnew", domains=("Musician", "Person"))
    line = codecs.format_legacy_line(record)
    assert line == 'b"it\'s \\xf0\\x9f\\x8e\\xb5\\nnew"<COMMA>Musician<COMMA>Person'
    assert codecs.parse_legacy_line(line) == Record(
        text="it's 🎵\nnew", domains=("Musician", "Person"), domain_ids=("54", "10")
    )
    with pytest.raises(ValueError):
        codecs.format_legacy_line(Record(text="x", domains=("a<COMMA>b",)))


# --------------------------------------------------------------------------- bad input


def _api_line(tweet_id: str, text: str, domain: str = "Person") -> str:
    return json.dumps(
        {
            "data": [
                {
                    "id": tweet_id,
                    "text": text,
                    "lang": "en",
                    "context_annotations": [
                        {"domain": {"id": "10", "name": domain}, "entity": {"id": "1", "name": "Someone"}}
                    ],
                }
            ]
        }
    )


def test_bad_lines_are_counted_and_good_lines_kept(tmp_path: Path) -> None:
    lines = [
        _api_line("1", "first good"),
        "this is not json at all",
        '{"data": [{"id": "2", "text": "cut off',
        json.dumps({"id": "3", "text": "normalized good", "domains": ["Sport"]}),
        json.dumps({"text": 5, "domains": ["Sport"]}),  # wrong-typed text
        json.dumps({"text": "labels wrong", "domains": "Sport"}),  # wrong-typed labels
        "",
        "   ",
        "b'legacy good'<COMMA>Holiday",
        "b'legacy broken",
        "42",
        "[" * 100_000,  # nesting too deep for the JSON decoder
        json.dumps([[[[[{"text": "deep list", "domains": []}]]]]]),
        json.dumps({"errors": [{"title": "Not Found Error"}]}),
        json.dumps({"data": [{"id": "4"}]}),  # a tweet without text
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, stats = _read(path)
    assert [r.text for r in records] == ["first good", "normalized good", "legacy good", "deep list"]
    assert stats.lines == 13
    assert stats.records == 4
    assert stats.bad_lines == 6
    assert stats.skipped == {
        "bad_json": 3,
        "bad_record": 2,
        "bad_legacy": 1,
        "unknown_shape": 1,
        "api_error": 1,
        "no_text": 1,
    }
    assert stats.summary().startswith("lines=13 records=4 bad_lines=6 skipped[api_error=1 bad_json=3")


def test_garbage_first_line_then_jsonl(tmp_path: Path) -> None:
    # Not one JSON document either: read line by line, the first line counted as bad.
    path = tmp_path / "odd.jsonl"
    path.write_text("garbage first\n" + _api_line("1", "a") + "\n" + _api_line("2", "b") + "\n")
    records, stats = _read(path)
    assert [r.id for r in records] == ["1", "2"]
    assert (stats.lines, stats.bad_lines) == (3, 1)


def test_wrong_typed_tweet_fields_never_raise() -> None:
    stats = ParseStats()
    payload = {
        "data": [
            {"id": 1, "text": None},
            {"id": True, "text": "ann is garbage", "context_annotations": "not json"},
            {
                "text": "odd items",
                "lang": 5,
                "context_annotations": [5, {"domain": "x"}, {"domain": {"name": 3}}],
            },
            "not a tweet",
        ],
        "includes": {"tweets": "not a list"},
        "errors": "not a list either",
    }
    records = codecs.parse_payload(payload, stats)
    assert [r.text for r in records] == ["ann is garbage", "odd items"]
    assert records[0].id is None and records[1].lang is None
    assert all(r.domains == () for r in records)
    assert stats.skipped == {"api_error": 1, "no_text": 2}


def test_random_garbage_never_raises(shared_data: Path) -> None:
    line = (shared_data / RAW / "DocNow__twarc-csv" / "test-data" / "streaming_output.jsonl").read_bytes()
    rng = random.Random(0)
    for _ in range(300):
        data = bytearray(line[: rng.randrange(len(line))])
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        stats = ParseStats()
        list(codecs.read_jsonl_bytes(bytes(data), stats))
        list(codecs.read_jsonl_bytes(gzip.compress(bytes(data))[: rng.randrange(1, 200)], stats))


def test_domains_are_canonical_sorted_unique_and_unknown_kept() -> None:
    tweet = {
        "id": "9",
        "text": "t",
        "context_annotations": [
            {"domain": {"id": "47", "name": "Brand"}, "entity": {"name": "Acme"}},
            {"domain": {"id": "46", "name": "Business Taxonomy"}, "entity": {"name": "Retail"}},
            {"domain": {"id": "46", "name": "Brand Category"}, "entity": {"name": "Retail"}},
            {"domain": {"id": "999", "name": "Brand New Domain"}, "entity": {"name": "Acme"}},
        ],
    }
    [record] = codecs.parse_payload({"data": tweet})
    assert record.domains == ("Brand", "Brand Category", "Brand New Domain")
    assert record.domain_ids == ("47", "46", "999")
    assert record.entities == ("Acme", "Retail")


def test_note_tweet_full_text_wins() -> None:
    tweet = {"id": "1", "text": "cut short…", "note_tweet": {"text": "the whole long post"}}
    assert codecs.parse_payload({"data": tweet})[0].text == "the whole long post"


def test_lone_surrogates_are_replaced() -> None:
    stats = ParseStats()
    [record] = codecs.parse_payload(json.loads('{"data": {"id": "1", "text": "half \\ud83d emoji"}}'), stats)
    assert record.text == "half ? emoji"
    assert stats.repaired == {"surrogates_replaced": 1}
    assert codecs.read_jsonl_bytes(codecs.write_jsonl_gz([record])).__next__() == record


def test_detect_format() -> None:
    assert codecs.detect_format(_api_line("1", "x")) == "api"
    assert codecs.detect_format({"data": {"id": "1", "text": "x"}, "matching_rules": []}) == "api"
    assert codecs.detect_format([{"id": "1", "text": "x"}]) == "api"
    assert codecs.detect_format({"id": "1", "text": "x", "author": {"username": "u"}}) == "tweet"
    assert codecs.detect_format({"id": "1", "text": "x", "entities": {"urls": []}}) == "tweet"
    assert codecs.detect_format('{"id": "1", "text": "x", "domains": ["Person"]}') == "normalized"
    assert codecs.detect_format({"text": "x", "topics": ["sports"]}) == "normalized"
    assert codecs.detect_format(b"b'abc'<COMMA>Person") == "legacy"
    assert codecs.detect_format('b"abc"') == "legacy"
    assert codecs.detect_format("garbage") == "unknown"
    assert codecs.detect_format(42) == "unknown"


def test_keep_reason() -> None:
    good = Record(text="hello", domains=("Person",), lang="en")
    assert codecs.keep_reason(good) is None
    assert codecs.keep_reason(Record(text="hola", domains=("Person",), lang="es")) == "lang"
    assert codecs.keep_reason(Record(text="🔥", domains=("Person",), lang="und")) == "lang"
    assert codecs.keep_reason(Record(text="hello", lang="en")) == "no_annotations"
    assert codecs.keep_reason(Record(text="  ", domains=("Person",), lang="en")) == "empty_text"
    assert codecs.keep_reason(Record(text="legacy", domains=("Person",))) is None  # unknown language
    assert (
        codecs.keep_reason(Record(text="hola", lang="es"), languages=None, require_annotations=False) is None
    )
    assert (
        codecs.keep_reason(Record(text="hola", domains=("Person",), lang="es"), languages=("en", "es"))
        is None
    )


# --------------------------------------------------------------------------- files, gzip, batches


def test_gz_files_read_like_plain_ones(tmp_path: Path, shared_data: Path) -> None:
    source = shared_data / RAW / "QUT-Digital-Observatory__tweetexploR" / "auspol.jsonl"
    packed = tmp_path / "auspol.jsonl.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    plain_records, _ = _read(source)
    gz_records, stats = _read(packed)
    assert gz_records == plain_records and stats.bad_lines == 0
    # A pretty-printed document inside gzip, without a .gz name, is found by its magic bytes.
    doc = (
        shared_data
        / RAW
        / "jpopesculian__twitter-v2-rs"
        / "fixtures"
        / "data"
        / "tweet"
        / "example_retweet.json"
    )
    hidden = tmp_path / "retweet.json"
    hidden.write_bytes(gzip.compress(doc.read_bytes()))
    assert _read(hidden)[0] == _read(doc)[0]


def test_truncated_gz_file_keeps_what_it_can(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"tweet {i}", "domains": ["Person"]}) for i in range(2000)]
    data = gzip.compress("\n".join(lines).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    records, stats = _read(path)
    assert 0 < len(records) < 2000
    assert stats.skipped.get("bad_gzip") == 1

    stats = ParseStats()
    salvaged = list(codecs.read_jsonl_bytes(data[: len(data) // 2], stats))
    assert 0 < len(salvaged) < 2000
    assert stats.skipped["bad_gzip"] == 1


def test_store_batch_round_trip() -> None:
    records = [
        Record(text="one", domains=("Person",), domain_ids=("10",), id="1", lang="en"),
        Record(text="two\nlines ünïcode 🎵", entities=("X",), created_at="2022-06-01T00:00:00.000Z"),
    ]
    data = codecs.write_jsonl_gz(records)
    assert data[:2] == b"\x1f\x8b"
    assert codecs.write_jsonl_gz(records) == data  # reproducible: no timestamp in the header
    stats = ParseStats()
    assert list(codecs.read_jsonl_bytes(data, stats)) == records
    assert (stats.lines, stats.records, stats.bad_lines) == (2, 2, 0)
    assert list(codecs.read_jsonl_bytes(gzip.decompress(data))) == records
    assert gzip.decompress(data).decode().splitlines()[0] == records[0].to_json()


def test_iter_paths(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "sub/c.jsonl", "sub/.hidden"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    assert [p.name for p in codecs.iter_paths([str(tmp_path / "*.jsonl")])] == ["a.jsonl", "b.jsonl"]
    assert [p.name for p in codecs.iter_paths([str(tmp_path / "**" / "*.jsonl")])] == [
        "a.jsonl",
        "b.jsonl",
        "c.jsonl",
    ]
    assert [p.name for p in codecs.iter_paths([tmp_path])] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert len(list(codecs.iter_paths([str(tmp_path / "a.jsonl"), str(tmp_path / "*.jsonl")]))) == 2
    with pytest.raises(FileNotFoundError, match="nope"):
        list(codecs.iter_paths([str(tmp_path / "nope*.jsonl")]))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    assert _read(path) == ([], ParseStats())


def test_parse_stats_merge_and_summary() -> None:
    a = ParseStats(lines=3, records=2)
    a.bad("bad_json")
    b = ParseStats(lines=1, records=1)
    b.skip("api_error", 2)
    b.repair("lossy_id")
    assert a.merge(b) is a
    assert (a.lines, a.records, a.bad_lines) == (4, 3, 1)
    assert a.skipped == {"bad_json": 1, "api_error": 2}
    assert a.summary() == "lines=4 records=3 bad_lines=1 skipped[api_error=2 bad_json=1] repaired[lossy_id=1]"
