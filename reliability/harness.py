"""What every reliability scenario shares: the results row, real processes, waits and readers.

Each scenario drives the real processes of the system (``python -m tweetdomains collect |
train | serve``, a moto S3 server, a ``redis-server``) on loopback, and fills one
:class:`Row` of the final table. Nothing here mocks a peer.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.conftest import ROOT, RedisServer, free_port, wait_for_port

COLUMNS = (
    ("scenario", "scenario"),
    ("load", "load"),
    ("faults", "faults injected"),
    ("requests", "requests sent"),
    ("failed", "failed"),
    ("tweets_sent", "tweets sent"),
    ("tweets_stored", "tweets stored"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("figures", "figures"),
    ("outcome", "result"),
)


@dataclass
class Row:
    """One line of the final table. ``None`` means "does not apply" (shown as a dash)."""

    scenario: str
    load: str = ""
    faults: str = ""
    requests: int | None = None
    failed: int | None = None
    tweets_sent: int | None = None
    tweets_stored: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: str = "not run"

    def cells(self) -> list[str]:
        """The row's values as table cells."""
        out = []
        for name, _ in COLUMNS:
            value = getattr(self, name)
            if name == "figures":
                value = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
            out.append("–" if value is None or value == "" else str(value))
        return out

    def count_tweets(self, sent: Iterable[str], stored: Iterable[str | None]) -> None:
        """Fill tweets sent/stored, lost (sent but not stored) and duplicated (stored twice)."""
        sent_ids = set(sent)
        stored_list = list(stored)
        counts = Counter(stored_list)
        self.tweets_sent = len(sent_ids)
        self.tweets_stored = len(stored_list)
        self.lost = len(sent_ids - set(counts))
        self.duplicated = sum(n - 1 for n in counts.values() if n > 1)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def markdown_table(rows: Iterable[Row]) -> str:
    """The rows as a GitHub Markdown table."""
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |")
    return "\n".join(lines) + "\n"


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something true; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(every)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: no stray tweetdomains/AWS/X settings of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWEETDOMAINS_", "AWS_", "X_"))}
    env.update({"TWEETDOMAINS_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    env.update(extra or {})
    return env


class Proc:
    """A real child process with its output in files (never a pipe that can fill and block)."""

    def __init__(self, argv: list[str], env: Mapping[str, str], workdir: Path, name: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        self._out: IO[bytes] = self.stdout_path.open("wb")
        self._err: IO[bytes] = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            argv, env=dict(env), stdout=self._out, stderr=self._err, cwd=str(workdir), start_new_session=True
        )
        self.pid = self.process.pid

    @classmethod
    def tweetdomains(cls, args: list[str], env: Mapping[str, str], workdir: Path, name: str) -> Proc:
        """``python -m tweetdomains ARGS``."""
        return cls([sys.executable, "-m", "tweetdomains", *args], env, workdir, name)

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the exit code; kill and fail after ``timeout`` s."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(0)
            raise AssertionError(
                f"{self.name} did not exit within {timeout}s; stderr: {self.stderr()}"
            ) from None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; closes the output files."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM if grace else signal.SIGKILL)
            try:
                self.process.wait(timeout=grace or 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._out.close()
        self._err.close()

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self, tail: int = 3000) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-tail:]

    def last_json(self) -> dict[str, Any]:
        """The JSON object on the last line of standard output (the CLIs print their summary so)."""
        lines = [line for line in self.stdout().splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"{self.name} printed nothing; stderr: {self.stderr()}")
        return dict(json.loads(lines[-1]))


class ApiServer:
    """``python -m tweetdomains serve`` on a free loopback port."""

    def __init__(
        self,
        store_uri: str,
        workdir: Path,
        redis_url: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "api",
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = ["serve", "--store", store_uri, "--host", "127.0.0.1", "--port", str(self.port)]
        if redis_url:
            argv += ["--redis-url", redis_url]
        self.proc = Proc.tweetdomains(argv, child_env(env), workdir, name)

    def wait_ready(self, timeout: float = 60.0, route: str = "/readyz") -> None:
        """Until ``route`` answers 200; fails early if the process exits."""

        def ready() -> bool:
            if not self.proc.alive():
                raise AssertionError(f"the API exited ({self.proc.process.returncode}): {self.proc.stderr()}")
            return http_status(self.base + route) == 200

        wait_until(ready, timeout, f"API {route} answers 200", every=0.2)

    def stop(self, grace: float = 10.0) -> None:
        self.proc.stop(grace)


def http_json(
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """GET (or POST ``body`` as JSON) with the standard library; (status, decoded JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={**(headers or {})})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def http_status(url: str, timeout: float = 2.0) -> int:
    """The status of a GET, 0 when nothing answers."""
    try:
        return http_json(url, timeout=timeout)[0]
    except OSError:
        return 0


def metric(port: int, name: str) -> float:
    """One sample of a Prometheus metric from ``/metrics`` (0 when absent or unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def prom_sum(base: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples at ``base/metrics`` whose labels match ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = http_json(base + "/metrics")
    assert status == 200, text
    return sum(
        sample.value
        for family in text_string_to_metric_families(str(text))
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def stored_ids(uri: str, env: Mapping[str, str] | None = None) -> list[str | None]:
    """The ids of every record under the store's ``raw/``, one per stored line (``env``: the
    store's credentials and endpoint, set for the read only)."""
    import pytest

    from tweetdomains.codecs import read_jsonl_bytes
    from tweetdomains.store import open_store

    with pytest.MonkeyPatch.context() as patch:
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        store = open_store(uri)
        return [r.id for key in store.list("raw/") for r in read_jsonl_bytes(store.get(key))]


def kill_tree(proc: Proc | None) -> None:
    """Stop a process if it still runs (used in ``finally`` blocks)."""
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.stop(5)


__all__ = [
    "ROOT",
    "ApiServer",
    "Proc",
    "RedisServer",
    "Row",
    "child_env",
    "free_port",
    "http_json",
    "http_status",
    "kill_tree",
    "markdown_table",
    "metric",
    "prom_sum",
    "stored_ids",
    "wait_for_port",
    "wait_until",
]
