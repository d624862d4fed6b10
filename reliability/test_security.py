"""Scenario 8: security. Pickled models planted in the store are refused without running
anything (registry and API); with an API key set, every route but the probes and metrics
rejects a missing or wrong key; the repository holds no secret (detect-secrets against the
committed baseline, which must catch a planted key); the images and pods run as non-root."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import ROOT, ApiServer, Proc, Row, child_env, http_json, kill_tree
from reliability.models import METRIC, pickle_payloads, plant_pickled_runs, publish_tiny
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore

BIN = Path(sys.executable).parent
OPEN_ROUTES = {"/healthz", "/readyz", "/metrics"}
API_KEY = "reliability-" + "k" * 24  # pragma: allowlist secret


def _api_available() -> bool:
    try:
        import tweetdomains_api.cli  # noqa: F401
    except ImportError:
        return False
    return True


needs_api = pytest.mark.skipif(not _api_available(), reason="the API service is not there yet")


# --------------------------------------------------------------------------- pickles


def _control_runs_code(tmp_path: Path) -> bool:
    """The same payload, loaded as a careless loader would (torch.load with full unpickling),
    does run code: proof that the refusal below is what keeps it from running."""
    control = tmp_path / "control-marker"
    payload = tmp_path / "control.pt"
    payload.write_bytes(pickle_payloads(control)["torch_save"])
    code = f"import torch; torch.load({str(payload)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
    return control.exists()


@pytest.mark.scenario("8a pickled model planted in the store")
def test_pickled_models_are_refused_without_running_code(row: Row, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    store_uri = str(tmp_path / "store")
    store = LocalStore(store_uri)
    runs = plant_pickled_runs(store, marker)
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(r.to_json() + "\n" for r in generate(50, seed=81)), encoding="utf-8")
    row.load = f"{len(runs)} planted runs: torch.save weights, model.pt, raw pickle"
    row.faults = "pickle whose loading writes a file"
    assert _control_runs_code(tmp_path), "the payload is inert: the test would prove nothing"

    refused = []
    for run in runs:
        argv = ["evaluate", "--store", store_uri, "--run", run, "--data", str(data), "--no-report"]
        job = Proc.tweetdomains(argv, child_env(), tmp_path, f"evaluate-{run}")
        try:
            code = job.wait(120)
        finally:
            kill_tree(job)
        err = job.stderr()
        assert code == 1, f"{run}: exit {code}: {err}"
        assert "Traceback" not in err and "error:" in err, err
        refused.append(run)
        assert not marker.exists(), f"loading {run} ran the pickled code"

    api_refused: list[str] = []
    if _api_available():
        # The API starts on a promoted pickle: never ready, nothing runs; then a good model is
        # promoted and served; then a pickle is promoted over it: refused, the good one stays.
        Registry(store).promote(runs[0], METRIC, 0.9, force=True)
        api = ApiServer(store_uri, tmp_path, env={"TWEETDOMAINS_RELOAD_INTERVAL_S": "0.5"}, name="api")
        try:
            api.wait_ready(60, route="/healthz")
            status, _ = http_json(api.base + "/readyz")
            assert status == 503 and not marker.exists()
            assert http_json(api.base + "/classify", {"text": "hello"})[0] == 503
            publish_tiny(store, "good-run", seed=5, value=0.95)
            api.wait_ready(60)
            for run in runs:
                Registry(store).promote(run, METRIC, 0.99, force=True)
                _served_for_a_while(api.base, "good-run")
                api_refused.append(run)
            assert not marker.exists()
        finally:
            api.stop()
    row.requests = None
    row.figures = {
        "refused_by_cli": len(refused),
        "refused_by_api": len(api_refused) if _api_available() else "n/a",
    }
    assert not marker.exists()


def _served_for_a_while(base: str, version: str, seconds: float = 2.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = http_json(base + "/classify", {"text": "the match tonight"})
        assert status == 200 and body["model_version"] == version, (status, body)
        time.sleep(0.1)


# --------------------------------------------------------------------------- API key


def _routes(base: str) -> list[tuple[str, str]]:
    status, spec = http_json(base + "/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"})
    assert status == 200, spec
    routes = [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    for extra in ("/", "/docs", "/openapi.json"):
        if ("GET", extra) not in routes:
            routes.append(("GET", extra))
    return sorted(routes)


BODIES: dict[str, Any] = {"/classify": {"text": "a tweet"}, "/classify/batch": {"texts": ["a tweet"]}}
WRONG = {
    "missing": {},
    "wrong key": {"Authorization": "Bearer wrong"},
    "key + suffix": {"Authorization": f"Bearer {API_KEY}x"},
    "key prefix": {"Authorization": f"Bearer {API_KEY[:-1]}"},
    "no scheme": {"Authorization": API_KEY},
    "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    "empty bearer": {"Authorization": "Bearer"},
}


@needs_api
@pytest.mark.scenario("8b API key required")
def test_api_key_guards_every_route_but_probes_and_metrics(row: Row, tmp_path: Path) -> None:
    import httpx

    store_uri = str(tmp_path / "store")
    publish_tiny(LocalStore(store_uri), "keyed-run", seed=3, value=0.5)
    api = ApiServer(store_uri, tmp_path, env={"TWEETDOMAINS_API_KEY": API_KEY})
    sent = failures = 0
    problems: list[str] = []
    try:
        api.wait_ready(60)
        routes = _routes(api.base)
        row.load = f"{len(routes)} routes x {len(WRONG)} wrong credentials + the right one"
        row.faults = "missing, wrong, truncated, extended, unscheme'd, Basic keys"
        with httpx.Client(base_url=api.base, timeout=10) as client:
            for method, path in routes:
                body = BODIES.get(path, {}) if method != "GET" else None
                for label, headers in WRONG.items():
                    response = client.request(method, path, json=body, headers=headers)
                    sent += 1
                    expected_open = path in OPEN_ROUTES
                    if expected_open and response.status_code == 401:
                        problems.append(f"{method} {path} ({label}): 401 on an open route")
                    if not expected_open and response.status_code != 401:
                        problems.append(f"{method} {path} ({label}): {response.status_code}, not 401")
                    if response.status_code >= 500:
                        failures += 1
                right = client.request(
                    method, path, json=body, headers={"Authorization": f"Bearer {API_KEY}"}
                )
                sent += 1
                if right.status_code in (401, 403) or right.status_code >= 500:
                    problems.append(f"{method} {path} with the key: {right.status_code}")
                    failures += right.status_code >= 500
    finally:
        api.stop()
    row.requests, row.failed = sent, failures
    row.figures = {"routes": len(routes), "wrong_answers": len(problems)}
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- secrets


def _repository_files(root: Path) -> list[str]:
    """Tracked files plus new ones git does not ignore (what a commit would carry)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    return sorted(p for p in listed.split("\0") if p and (root / p).is_file())


def _scan(root: Path, files: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "detect-secrets-hook"), "--baseline", ".secrets.baseline", *files]
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.scenario("8c secret scan (detect-secrets)")
def test_no_secret_in_the_repository_and_a_planted_one_is_caught(row: Row, tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = _repository_files(ROOT)
    row.load = f"{len(files)} repository files"
    # Scanned in a copy: the hook rewrites the baseline's line numbers when they moved.
    copy = tmp_path / "repo"
    for name in [*files, ".secrets.baseline"]:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, target)
    subprocess.run(["git", "init", "-q", str(copy)], check=True, timeout=60)
    clean = _scan(copy, files)
    # 0: nothing new; 3: nothing new, the baseline's line numbers were refreshed.
    assert clean.returncode in (0, 3), "secrets not in .secrets.baseline:\n" + clean.stdout[-4000:]

    # Built at run time so that this file itself holds no key-shaped string.
    key_id = "AKIA" + "QX7RZ2WQ4M5TN3PL"
    secret = "wJalrXUt" + "nFEMI/K7MDENG/bPxRfiCYzEXAMPLE1234"  # pragma: allowlist secret
    planted = "services/collector/tweetdomains_collector/leaked.py"
    (copy / planted).write_text(
        f'AWS_ACCESS_KEY_ID = "{key_id}"\naws_secret_access_key = "{secret}"\n', encoding="utf-8"
    )
    caught = _scan(copy, [*files, planted])
    row.faults = "a fake AWS key planted in a copy"
    row.figures = {"clean_scan_exit": clean.returncode, "planted_scan_exit": caught.returncode}
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert planted in caught.stdout and "AWS Access Key" in caught.stdout, caught.stdout


# --------------------------------------------------------------------------- non-root


def _final_user(dockerfile: Path) -> str | None:
    """The USER in force in the Dockerfile's last stage (None if it never sets one)."""
    user = None
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if re.match(r"(?i)^FROM\s", line):
            user = None
        match = re.match(r"(?i)^USER\s+(\S+)", line)
        if match:
            user = match.group(1)
    return user


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0]
    return name in ("root", "0")


def _pod_specs(document: dict[str, Any]) -> list[dict[str, Any]]:
    kind = document.get("kind")
    spec = document.get("spec") or {}
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return [spec["template"]["spec"]]
    if kind == "Pod":
        return [spec]
    return []


def _rendered_manifests(tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every kustomization under k8s/ rendered by ``kubectl kustomize`` (example secrets filled
    in); without kubectl, the plain manifests of k8s/base."""
    import yaml

    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", k8s)
    for example in k8s.rglob("*.example"):
        shutil.copyfile(example, example.with_suffix(""))
    rendered: dict[str, list[dict[str, Any]]] = {}
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        docs = [d for f in sorted((k8s / "base").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
        rendered["base (raw)"] = [d for d in docs if isinstance(d, dict)]
        return rendered
    targets = [k8s / "base", *sorted(p for p in (k8s / "overlays").iterdir() if p.is_dir())]
    for target in targets:
        out = subprocess.run(
            [kubectl, "kustomize", str(target)], capture_output=True, text=True, timeout=120, check=False
        )
        assert out.returncode == 0, f"kubectl kustomize {target.relative_to(tmp_path)}: {out.stderr}"
        rendered[str(target.relative_to(k8s))] = [d for d in yaml.safe_load_all(out.stdout) if d]
    return rendered


@pytest.mark.scenario("8d containers non-root")
def test_images_and_pods_are_declared_non_root(row: Row, tmp_path: Path) -> None:
    dockerfiles = {name: ROOT / "services" / name / "Dockerfile" for name in ("collector", "trainer", "api")}
    problems = []
    for name, path in dockerfiles.items():
        if not path.exists():
            problems.append(f"services/{name}/Dockerfile is missing")
            continue
        user = _final_user(path)
        if user is None or _is_root(user):
            problems.append(f"services/{name}/Dockerfile runs as {user or 'root (no USER)'}")
    workloads = 0
    for where, documents in _rendered_manifests(tmp_path).items():
        for document in documents:
            for pod in _pod_specs(document):
                workloads += 1
                what = f"{where}: {document['kind']} {document['metadata']['name']}"
                pod_ctx = pod.get("securityContext") or {}
                for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
                    ctx = {**pod_ctx, **(container.get("securityContext") or {})}
                    if ctx.get("runAsNonRoot") is not True:
                        problems.append(f"{what} container {container['name']}: runAsNonRoot is not true")
                    if ctx.get("runAsUser") == 0:
                        problems.append(f"{what} container {container['name']}: runAsUser 0")
                    if ctx.get("allowPrivilegeEscalation") is not False:
                        problems.append(f"{what} container {container['name']}: privilege escalation allowed")
    row.load = f"{len(dockerfiles)} Dockerfiles, {workloads} rendered pod specs"
    row.figures = {"problems": len(problems)}
    assert workloads > 0
    assert not problems, "\n".join(problems)
