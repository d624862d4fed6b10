"""Failing loudly: what a mistyped store, a taken port or a bad setting answers.

Each is exit code 2 and one sentence of ours on standard error, before any work is done: no
traceback, no pydantic wording (``Value error,``, ``Input should``, a bare ``source:``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import S3Server

LAUNCHER = Path(sys.executable).with_name("tweetdomains")
PYDANTIC_WORDING = ("Value error,", "Input should", "validation error", "pydantic", "Traceback")


def _tweetdomains(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TWEETDOMAINS_", "AWS_"))}
    return subprocess.run(
        [str(LAUNCHER), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_one_sentence(result: subprocess.CompletedProcess[str], command: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert not any(words in result.stderr for words in PYDANTIC_WORDING), result.stderr
    message = result.stderr.strip().splitlines()[-1]  # after any log lines (boto's, at INFO)
    assert message.startswith(f"tweetdomains {command}: error: "), result.stderr
    return message


def test_serve_refuses_a_local_store_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "path"
    result = _tweetdomains("serve", "--store", str(missing), "--port", "1", cwd=tmp_path)
    message = _assert_one_sentence(result, "serve")
    assert f"the store {missing} does not exist" in message


def test_serve_refuses_an_s3_bucket_that_does_not_exist(tmp_path: Path, s3_server: S3Server) -> None:
    result = _tweetdomains(
        "serve", "--store", "s3://no-such-bucket-here/store", cwd=tmp_path, env=s3_server.env()
    )
    message = _assert_one_sentence(result, "serve")
    assert "bucket 'no-such-bucket-here'" in message and "does not exist" in message


def test_demo_refuses_a_taken_port_before_collecting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _tweetdomains("demo", "--port", str(port), cwd=tmp_path)
    message = _assert_one_sentence(result, "demo")
    assert f"port {port} on 127.0.0.1 is not free" in message and "--port" in message
    assert not (tmp_path / "var").exists(), "nothing was collected"
    assert "== collect" not in result.stdout


def test_demo_refuses_a_store_that_holds_other_tweets(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "raw" / "2026").mkdir(parents=True)
    (store / "raw" / "2026" / "batch.jsonl.gz").write_bytes(b"")
    result = _tweetdomains("demo", "--store", str(store), "--no-serve", cwd=tmp_path)
    message = _assert_one_sentence(result, "demo")
    assert "already holds collected tweets" in message and "== collect" not in result.stdout


def test_a_bad_source_is_our_sentence(tmp_path: Path) -> None:
    result = _tweetdomains("collect", "--source", "twitter", "--store", str(tmp_path), cwd=tmp_path)
    message = _assert_one_sentence(result, "collect")
    assert message.endswith(
        "--source (TWEETDOMAINS_SOURCE) must be x-api, replay:PATH[,PATH...] or "
        "simulate[:SEED], not 'twitter'"
    ), message


def test_a_mistyped_number_names_its_flag_and_variable(tmp_path: Path) -> None:
    result = _tweetdomains("serve", "--store", str(tmp_path), cwd=tmp_path, env={"TWEETDOMAINS_PORT": "80a"})
    message = _assert_one_sentence(result, "serve")
    assert "--port (TWEETDOMAINS_PORT) should be a valid integer" in message and "'80a'" in message


# Every command, with the arguments it requires, under a setting every command reads.
COMMANDS = {
    "collect": ["--source", "simulate", "--limit", "1"],
    "export-legacy": [],
    "train": ["--dry-run"],
    "evaluate": ["--data", "records.jsonl"],
    "promote": ["some-run"],
    "sweep": ["--grid", "seed-rnn"],
    "pretrain": ["--data", "texts.txt"],
    "teacher": ["--dry-run"],
    "teacher-score": ["--data", "texts.txt"],
    "serve": [],
    "drift": [],
    "demo": ["--no-serve"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_setting_is_one_sentence_for_every_command(command: str, tmp_path: Path) -> None:
    from tweetdomains_cli.main import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(COMMANDS) == set(action.choices), "a command was added: list it here"
    result = _tweetdomains(
        command, *COMMANDS[command], cwd=tmp_path, env={"TWEETDOMAINS_LOG_LEVEL": "LOUD"}, timeout=120
    )
    message = _assert_one_sentence(result, command)
    assert message.endswith("TWEETDOMAINS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR"), message
