"""A client generated from the served /openapi.json (openapi-python-client, as a user would
generate one) classifies and gets typed 401/413/422/503 errors."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api_helpers import ApiProcess, publish_model

GENERATOR = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(GENERATOR is None, reason="openapi-python-client is not installed")


def _generate(spec: bytes, out: Path) -> Any:
    (out / "spec.json").write_bytes(spec)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    assert GENERATOR is not None
    result = subprocess.run(
        [GENERATOR, "generate", "--path", "spec.json", "--meta", "none", "--output-path", "tdclient"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (out / "tdclient" / "client.py").exists(), result.stdout + result.stderr
    sys.path.insert(0, str(out))
    return importlib.import_module("tdclient")


def test_generated_client_classifies_and_sees_typed_errors(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    (tmp_path / "store").mkdir()  # empty: the API serves 503 until a model is published
    env = {
        "TWEETDOMAINS_API_KEY": "k3y-for-tests",  # pragma: allowlist secret
        "TWEETDOMAINS_MAX_BODY_BYTES": "2048",
    }
    api = ApiProcess(store, env=env).start(tmp_path, wait_ready=False)
    try:
        spec = httpx.get(api.base + "/openapi.json", headers={"Authorization": "Bearer k3y-for-tests"})
        _generate(spec.content, tmp_path)
        from tdclient import AuthenticatedClient
        from tdclient.api.classify import classify
        from tdclient.models import (
            ClassifyRequest,
            ClassifyResponse,
            ErrorResponse,
        )

        client = AuthenticatedClient(base_url=api.base, token="k3y-for-tests", timeout=httpx.Timeout(60))
        loading = classify.sync_detailed(client=client, body=ClassifyRequest(text="goal for arsenal"))
        assert loading.status_code == 503 and isinstance(loading.parsed, ErrorResponse)
        assert "no model" in loading.parsed.detail

        run_id = publish_model(store, seed=1)
        api.wait(ready=True)
        answer = classify.sync(client=client, body=ClassifyRequest(text="goal for arsenal"))
        assert isinstance(answer, ClassifyResponse) and answer.model_version == run_id
        assert answer.domains[0].probability >= answer.domains[-1].probability

        wrong = AuthenticatedClient(base_url=api.base, token="nope")
        denied = classify.sync_detailed(client=wrong, body=ClassifyRequest(text="goal"))
        assert denied.status_code == 401 and isinstance(denied.parsed, ErrorResponse)

        large = classify.sync_detailed(client=client, body=ClassifyRequest(text="goal " * 1000))
        assert large.status_code == 413 and isinstance(large.parsed, ErrorResponse)

        empty = classify.sync_detailed(client=client, body=ClassifyRequest(text="\u200b"))
        assert empty.status_code == 422 and isinstance(empty.parsed, ErrorResponse)
        assert "nothing to classify" in empty.parsed.detail
    finally:
        api.stop()
