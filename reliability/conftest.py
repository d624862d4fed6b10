"""The reliability suite's frame: every test here is marked ``reliability``, fills one
:class:`~reliability.harness.Row` through the ``row`` fixture, and the session ends with the
table printed and written to ``var/reliability/table.md``."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import Row, markdown_table
from tests.conftest import S3Server
from tests.integration.xstream_server import TcpProxy

HERE = Path(__file__).resolve().parent
_ROWS: list[Row] = []
_ROW_KEY = pytest.StashKey[Row]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """The module's own S3 server (a fault scenario must not disturb another module's)."""
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def proxied(s3: S3Server) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh bucket as a store URI, and the proxy a collector reaches it through."""
    proxy = TcpProxy(s3.port)
    proxy.restore()
    try:
        yield f"s3://{s3.create_bucket()}/reliability", proxy
    finally:
        proxy.cut()


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Iterator[Row]:
    """This scenario's row of the final table (the test fills it, the outcome is set for it)."""
    marker = request.node.get_closest_marker("scenario")
    name = marker.args[0] if marker else request.node.name.removeprefix("test_").replace("_", " ")
    entry = Row(scenario=name)
    request.node.stash[_ROW_KEY] = entry
    _ROWS.append(entry)
    yield entry


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    entry = item.stash.get(_ROW_KEY, None)
    if entry is not None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            entry.outcome = "skipped" if report.skipped else ("PASS" if report.passed else "FAIL")
        elif report.when == "teardown" and report.failed:
            entry.outcome = "FAIL (teardown)"
    return report


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(name): the scenario's name in the reliability table")


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _ROWS:
        return
    table = markdown_table(sorted(_ROWS, key=lambda r: _natural(r.scenario)))
    out = Path(config.rootpath) / "var" / "reliability" / "table.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
    terminalreporter.section("reliability")
    terminalreporter.write(table)
    terminalreporter.write_line(f"(written to {out})")
