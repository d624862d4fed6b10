"""The ObjectStore contract, run on both backends: a local folder and S3 over HTTP (moto server)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tweetdomains.store import LocalStore, ObjectNotFound, ObjectStore, S3Store, StoreError, open_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(tmp_path / "store")
    return open_store(request.getfixturevalue("s3_uri"))


def test_put_get_roundtrip_and_overwrite(store: ObjectStore) -> None:
    store.put("raw/2026/11/29/02/a.jsonl.gz", b"first")
    assert store.get("raw/2026/11/29/02/a.jsonl.gz") == b"first"
    store.put("raw/2026/11/29/02/a.jsonl.gz", b"second")
    assert store.get("raw/2026/11/29/02/a.jsonl.gz") == b"second"
    assert store.exists("raw/2026/11/29/02/a.jsonl.gz")


def test_missing_key_is_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("models/nope/config.json")
    assert not store.exists("models/nope/config.json")


def test_list_is_sorted_and_prefix_filtered(store: ObjectStore) -> None:
    for key in ["raw/b/2.gz", "raw/a/1.gz", "models/x/config.json", "raw/a/0.gz"]:
        store.put(key, key.encode())
    assert list(store.list("raw/")) == ["raw/a/0.gz", "raw/a/1.gz", "raw/b/2.gz"]
    assert list(store.list("models/")) == ["models/x/config.json"]
    assert len(list(store.list())) == 4


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("reports/r.md", b"x")
    store.delete("reports/r.md")
    store.delete("reports/r.md")
    assert not store.exists("reports/r.md")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_bad_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_binary_payload_survives(store: ObjectStore) -> None:
    payload = bytes(range(256)) * 1000
    store.put("models/r/model.safetensors", payload)
    assert store.get("models/r/model.safetensors") == payload


def test_local_writes_are_atomic_for_readers(tmp_path: Path) -> None:
    """A reader polling while a writer replaces an object sees only whole versions."""
    store = LocalStore(tmp_path)
    versions = [bytes([i]) * 200_000 for i in range(20)]
    store.put("models/best.json", versions[0])
    seen: set[bytes] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(store.get("models/best.json"))

    reader = threading.Thread(target=read)
    reader.start()
    for v in versions[1:]:
        store.put("models/best.json", v)
    done.set()
    reader.join()
    assert seen <= set(versions)
    assert not [p for p in tmp_path.rglob(".tmp-*")], "temporary files are cleaned up"


def test_open_store_parses_uris(tmp_path: Path, s3_env: dict[str, str]) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(tmp_path.as_uri()), LocalStore)
    s3 = open_store("s3://bucket/some/prefix")
    assert isinstance(s3, S3Store) and s3.prefix == "some/prefix/"
    with pytest.raises(ValueError, match="unsupported"):
        open_store("gs://bucket/x")
    with pytest.raises(ValueError, match="no bucket"):
        open_store("s3:///x")


def test_s3_prefix_isolates_stores(s3_server, s3_env: dict[str, str]) -> None:
    bucket = s3_server.create_bucket()
    a, b = open_store(f"s3://{bucket}/a"), open_store(f"s3://{bucket}/b")
    a.put("raw/x.gz", b"a")
    assert list(b.list()) == []
    assert list(a.list()) == ["raw/x.gz"]


def test_s3_missing_bucket_is_a_store_error(s3_env: dict[str, str]) -> None:
    store = open_store("s3://no-such-bucket-here/x")
    with pytest.raises(StoreError):
        store.put("raw/x.gz", b"x")


def test_s3_unreachable_server_is_a_store_error(
    monkeypatch: pytest.MonkeyPatch, s3_env: dict[str, str]
) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    store = open_store("s3://bucket/x")
    with pytest.raises(StoreError):
        store.put("raw/x.gz", b"x")
