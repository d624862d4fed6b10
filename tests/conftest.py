"""Fixtures shared by every test: the real data folder, a real S3 server, a real Redis, ports.

Real peers, not mocks: the S3 server is moto in server mode in its own process, spoken to over
HTTP by boto3; Redis is the server on 127.0.0.1:6379 that `.ci/run` starts when none answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tweetdomains.settings import data_dir

ROOT = Path(__file__).resolve().parents[1]


def require_data(relative: str = "") -> Path:
    """The path under the data folder; skip when absent, but fail under CI=true."""
    path = data_dir() / relative
    if not path.exists():
        message = f"real data not found at {path} (set TWEETDOMAINS_DATA_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_data()


def write_records(path: Path, records: Iterable[Any]) -> str:
    """``records`` (:class:`~tweetdomains.records.Record`) as a JSONL file; its path, for ``--data``."""
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float, log: Path | None = None) -> None:
    """Poll ``base``/readyz until it answers 200; AssertionError (with the log's tail, if
    given) when the process exits first or ``timeout`` seconds pass."""

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log is not None else ""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited early with code {process.returncode}: {tail()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{base} not ready after {timeout} s: {tail()}")


class S3Server:
    """moto's S3 server in a child process on loopback; stop/start simulate an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def create_bucket(self, name: str | None = None) -> str:
        import boto3

        name = name or f"bucket-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, **_creds(self.env())).create_bucket(Bucket=name)
        return name


class RedisServer:
    """A throw-away ``redis-server`` on a free loopback port, nothing persisted.

    ``kill()`` is a crash (SIGKILL, no goodbye to clients); ``start()`` again brings it back empty
    on the same port, as a restarted node.
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=15)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        self.kill()


def _creds(env: dict[str, str]) -> dict[str, Any]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session; tests make their own buckets."""
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 in this process at the S3 server; returns the variables for child processes."""
    env = s3_server.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def s3_uri(s3_server: S3Server, s3_env: dict[str, str]) -> str:
    """A fresh bucket on the S3 server, as a store URI with a prefix."""
    return f"s3://{s3_server.create_bucket()}/tweetdomains"


REDIS_URL = os.environ.get("TWEETDOMAINS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """The real Redis; fails (under CI) or skips when none answers."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL
