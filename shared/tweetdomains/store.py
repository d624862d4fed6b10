"""Object store: one interface, a local-folder backend (the embedded default) and S3.

Keys are ``/``-separated relative paths (``raw/2026/11/29/02/<id>.jsonl.gz``). Writes are
atomic on both backends: a reader sees the whole object or nothing. Local writes go to a
temporary file in the same folder and are renamed into place; an S3 PUT is atomic by itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse


class StoreError(RuntimeError):
    """The store could not be reached or refused an operation."""


class ObjectNotFound(StoreError, KeyError):
    """No object under that key."""


class StoreMissing(StoreError):
    """The store's folder or bucket does not exist (a typo, most often): nothing will ever appear there."""


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid store key {key!r}")
    return key


@runtime_checkable
class ObjectStore(Protocol):
    """What every backend offers."""

    uri: str

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` atomically, replacing any previous object."""

    def get(self, key: str) -> bytes:
        """Read an object; :class:`ObjectNotFound` if absent."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, in lexicographic order."""

    def delete(self, key: str) -> None:
        """Remove an object (no error if absent)."""


class LocalStore:
    """A folder on local disk; the default store for the demo and tests."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreError(f"cannot write {key} under {self.root}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read {key} under {self.root}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return iter(())
        keys = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"


class S3Store:
    """An S3 bucket (or MinIO / any S3-compatible server through ``AWS_ENDPOINT_URL``)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or boto3.client(
            "s3",
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
            ),
        )

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFound(kwargs.get("Key", "")) from None
            raise StoreError(f"S3 {what} failed on {self.uri}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"S3 {what} failed on {self.uri}: {exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        self._call("put", self.client.put_object, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        body = self._call("get", self.client.get_object, Key=self._key(key))["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self._call("head", self.client.head_object, Key=self._key(key))
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("list", paginator.paginate, Prefix=self.prefix + prefix)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"S3 list failed on {self.uri}: {exc}") from exc

    def delete(self, key: str) -> None:
        self._call("delete", self.client.delete_object, Key=self._key(key))

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"


def require_existing(store: ObjectStore) -> None:
    """Raise :class:`StoreMissing`, with a sentence naming it, when the store's local folder or S3
    bucket does not exist. An empty store that exists passes: something may still write to it.
    Other failures to reach S3 raise :class:`StoreError`."""
    if isinstance(store, LocalStore):
        if not store.root.is_dir():
            raise StoreMissing(
                f"the store {store.root} does not exist (no such folder); check the path, "
                f"or create it (mkdir -p {store.root}) to wait there for a model"
            )
        return
    if isinstance(store, S3Store):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            store.client.head_bucket(Bucket=store.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                endpoint = os.environ.get("AWS_ENDPOINT_URL") or "AWS"
                raise StoreMissing(
                    f"the S3 bucket {store.bucket!r} of the store {store.uri} does not exist on {endpoint}; "
                    "check the name, or create the bucket first"
                ) from None
            raise StoreError(f"S3 cannot open the bucket {store.bucket!r}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"S3 cannot reach the bucket {store.bucket!r}: {exc}") from exc


def open_store(uri: str | Path) -> ObjectStore:
    """Open ``s3://bucket/prefix``, ``file:///path`` or a plain path."""
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"store URI {text!r} names no bucket")
        return S3Store(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        return LocalStore(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ValueError(f"unsupported store URI {text!r}: use s3://bucket/prefix, file:///path or a path")
    return LocalStore(text)
