"""make compose-smoke: the Docker Compose stack for real, as the README runs it.

Runs docker-compose.yml (plus deploy/compose.test.yml where the third-party images cannot be
pulled: Redis and MinIO/mc stand-ins built here) with podman-compose, or ``docker compose``
where a Docker engine answers; collects replayed real tweets (``$TWEETDOMAINS_DATA_DIR/raw``,
default ``../shared/data/raw``) into the S3 service, trains once with the ``train`` profile (on
CPU, a short run: see TRAIN below), waits for the API's /readyz, classifies over HTTP through
the published port, checks the collector's /healthz, restarts the api container and checks it
serves the same model from the store, then removes every container, volume and network it
created (images stay cached). Its last line:

    images=3 compose_ready_s=N classify=ok api_added_mb=N collector_added_mb=N trainer_added_mb=N

The images come from deploy/images.sh (``make images``), run first. Settings (environment):
``TWEETDOMAINS_DATA_DIR``, ``TWEETDOMAINS_TAG`` (0.1.0), ``SMOKE_TIMEOUT_S`` (each wait, 900).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OVERRIDE = ROOT / "deploy" / "compose.test.yml"
PROJECT = "tweetdomains-smoke"
STORE = "s3://tweetdomains/store"
# The short training run: the `original` recipe (word vocabulary, one-way LSTM) for 2 epochs
# takes a minute or two on 2 CPU cores; the compose default (the trainer's, quality: 16 epochs and
# a refit) takes far longer. Same entry point, same store, same promotion.
TRAIN = f"train --recipe original --epochs 2 --store {STORE} --device cpu --no-progress"
# The README's compose commands, in the order this script runs them (tests/system/
# test_readme_deploy.py checks the README shows exactly these).
UP = "docker compose up -d --build"
TRAIN_ONCE = f"docker compose --profile train run --rm trainer {TRAIN}"
RESTART_API = "docker compose restart api"
DOWN = "docker compose --profile train down -v"
README_COMMANDS = (UP, TRAIN_ONCE, RESTART_API, DOWN)
TWEET = "Taylor Swift announces new album and world tour dates"


def log(message: str) -> None:
    print(f"[compose-smoke {time.strftime('%H:%M:%S')}] {message}", flush=True)


def fail(message: str) -> None:
    print(f"FAILED: {message}", flush=True)
    raise SystemExit(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """The compose project, driven through the README's `docker compose ...` commands."""

    def __init__(self, engine: str, compose: list[str], env: dict[str, str]) -> None:
        self.engine, self.compose, self.env = engine, compose, env

    def run(self, readme_command: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        words = shlex.split(readme_command)
        assert words[:2] == ["docker", "compose"], readme_command
        argv = [*self.compose, *words[2:]]
        if self.engine == "podman":
            # podman 4.3 (Debian 12) cannot start a container whose `--requires` include a
            # finished one-shot container (minio-init) that itself requires a running one
            # ("generating dependency graph ... not found in input list"), and would restart
            # minio-init besides. --no-deps leaves the order to podman-compose, which still
            # starts the services in depends_on order (podman < 4.6 cannot wait for healthy).
            for verb in ("up", "run"):
                if verb in argv:
                    argv.insert(argv.index(verb) + 1, "--no-deps")
                    break
        log(f"$ {readme_command}")
        result = subprocess.run(
            argv, cwd=ROOT, env=self.env, text=True, capture_output=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
            fail(f"`{readme_command}` exited {result.returncode} ({shlex.join(argv)})")
        return result

    def engine_run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.engine, *args], env=self.env, text=True, capture_output=True, timeout=300, check=False
        )
        if check and result.returncode != 0:
            fail(f"`{self.engine} {shlex.join(args)}`: {result.stderr.strip()[-2000:]}")
        return result

    def container(self, service: str) -> str:
        names = self.engine_run(
            "ps", "-a", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={PROJECT}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()  # fmt: skip
        return names[0] if names else ""

    def healthy(self, service: str) -> bool:
        """The service's own healthcheck (docker-compose.yml's `healthcheck:`), run now."""
        name = self.container(service)
        if not name:
            return False
        if self.engine == "podman":  # podman runs healthchecks from systemd timers; run it here
            return self.engine_run("healthcheck", "run", name).returncode == 0
        status = self.engine_run("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
        return status == "healthy"

    def exited_ok(self, service: str) -> bool:
        name = self.container(service)
        if not name:
            return False
        state = self.engine_run("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        status, _, code = state.stdout.strip().partition(" ")
        if status == "exited" and code != "0":
            self.show_logs(service)
            fail(f"{service} exited {code}")
        return status == "exited"

    def exec_python(self, service: str, code: str) -> str:
        result = self.engine_run("exec", self.container(service), "python", "-c", code)
        if result.returncode != 0:
            fail(f"python in {service}: {result.stderr.strip()[-2000:]}")
        return result.stdout.strip()

    def show_logs(self, service: str) -> None:
        name = self.container(service)
        if name:
            out = self.engine_run("logs", "--tail", "40", name)
            print(f"--- logs of {service} ---\n{out.stdout[-6000:]}{out.stderr[-6000:]}", flush=True)

    def existing(self) -> set[str]:
        """Every container, volume and network on this machine (what is left is compared)."""
        found = set()
        for kind in ("container", "volume", "network"):
            args = ["ls", "-a", "-q", "--no-trunc"] if kind == "container" else ["ls", "-q"]
            found |= {f"{kind} {name}" for name in self.engine_run(kind, *args).stdout.split()}
        return found

    def leftovers(self, since: set[str] | None = None) -> list[str]:
        """What belongs to the project: named after it, or created since ``since``."""
        now = self.existing()
        names = {n for n in now if n.split(" ", 1)[1].startswith(PROJECT)}
        return sorted(names | (now - since if since is not None else set()))


def wait(what: str, check: Callable[[], bool], timeout: float, every: float = 2.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    took = time.monotonic() - start
    log(f"{what}: after {took:.0f} s")
    return took


def http(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def script(path: str, env: dict[str, str]) -> str:
    """Run one of deploy/'s scripts, its output shown as it comes; its last line."""
    last = ""
    with subprocess.Popen(
        [str(ROOT / path)], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            last = line.strip() or last
    if process.returncode != 0:
        fail(f"{path} exited {process.returncode}")
    return last


def find_engine() -> tuple[str, list[str]] | None:
    """(engine, the compose command) or None where containers cannot run here."""
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker", ["docker", "compose", "-p", PROJECT, "-f", "docker-compose.yml"]
    if shutil.which("podman") and subprocess.run(["podman", "info"], capture_output=True).returncode == 0:
        podman_compose = os.environ.get("PODMAN_COMPOSE") or shutil.which("podman-compose") or ""
        if not Path(podman_compose).is_file():
            fail("podman-compose is not installed (make compose-smoke installs it in .venv/compose)")
        # The stand-ins replace only the images (deploy/compose.test.yml says why); the builds
        # get what deploy/images.sh gives them: the host's CA bundle, the torch wheelhouse.
        build = ["--network=host", "-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
        build += ["-v", f"{ROOT}/deploy/pip.conf:/etc/pip.conf:ro"]
        wheelhouse = os.environ.get("TORCH_WHEELHOUSE_DIR") or os.environ.get("PIP_FIND_LINKS", "")
        if wheelhouse and list(Path(wheelhouse).glob("torch-*.whl")):
            build += ["-v", f"{wheelhouse}:/wheelhouse:ro"]
            os.environ["SMOKE_TORCH_WHEELHOUSE"] = "/wheelhouse"
        files = ["-p", PROJECT, "-f", "docker-compose.yml", "-f", str(OVERRIDE)]
        return "podman", [podman_compose, "--podman-build-args", shlex.join(build), *files]
    return None


def main() -> None:
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "deploy" / "containers.conf"))
    found = find_engine()
    if found is None:
        message = "containers cannot run here: neither `docker info` nor `podman info` answers"
        reason = os.environ.get("SKIP_CONTAINERS")
        if os.environ.get("CI") == "true" and not reason:
            fail(f"{message} (set SKIP_CONTAINERS=<why> to skip deliberately)")
        print(f"SKIPPED: {message}" + (f" (SKIP_CONTAINERS={reason})" if reason else ""))
        return
    engine, compose = found
    timeout = float(os.environ.get("SMOKE_TIMEOUT_S", "900"))
    tag = os.environ.get("TWEETDOMAINS_TAG", "0.1.0")
    data = Path(os.environ.get("TWEETDOMAINS_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()
    env = {
        **os.environ,
        "MINIO_ROOT_USER": "smoke",
        "MINIO_ROOT_PASSWORD": secrets.token_hex(16),
        "API_PORT": str(free_port()),
        "MINIO_CONSOLE_PORT": str(free_port()),
        "COLLECTOR_BATCH_SECONDS": "5",
        "COLLECTOR_RATE": "200",
        "TWEETDOMAINS_TAG": tag,
    }
    if (data / "raw").is_dir():
        env |= {"COLLECTOR_REPLAY_DIR": str(data / "raw"), "COLLECTOR_SOURCE": "replay:/replay/**/*.jsonl"}
    elif os.environ.get("CI") == "true":
        fail(f"real data not found at {data}/raw (set TWEETDOMAINS_DATA_DIR)")
    else:
        log(f"real data not found at {data}/raw (set TWEETDOMAINS_DATA_DIR): the collector simulates")
    built = script("deploy/images.sh", env)
    added = dict(part.split("=") for part in built.split()[1:])
    if engine == "podman":
        script("deploy/standins.sh", env)
    stack = Stack(engine, compose, env)
    api = f"http://127.0.0.1:{env['API_PORT']}"
    if stack.leftovers():
        log(f"removing what an earlier run left: {stack.leftovers()}")
        stack.run(DOWN)
    before = stack.existing()

    try:
        start = time.monotonic()
        stack.run(UP)
        wait("redis healthy", lambda: stack.healthy("redis"), timeout)
        wait("minio healthy", lambda: stack.healthy("minio"), timeout)
        wait("minio-init exited 0 (bucket created)", lambda: stack.exited_ok("minio-init"), timeout)
        wait("collector /healthz", lambda: stack.healthy("collector"), timeout)
        wait("api /healthz", lambda: stack.healthy("api"), timeout)
        compose_ready_s = round(time.monotonic() - start)
        log(f"every service up and healthy {compose_ready_s} s after `{UP}`")

        code, _ = http(f"{api}/readyz")
        if code != 503:
            fail(f"/readyz answered {code} before any model was trained (503 expected)")

        def batches() -> int:
            return int(stack.exec_python("api", COUNT_BATCHES))

        wait("collected batches in the store", lambda: batches() >= 3, timeout, every=5)
        if env.get("COLLECTOR_SOURCE", "").startswith("replay:"):
            # The replay is done once the collector restarts at the end of its input: train on it all.
            collector = stack.container("collector")

            def restarted() -> bool:
                count = stack.engine_run("inspect", "--format", "{{.RestartCount}}", collector).stdout
                return count.strip() not in ("", "0")

            wait("the collector to reach the end of its replay", restarted, timeout, every=5)
        else:  # the synthetic stream never ends: 20 s of it
            wait("4 batches of synthetic tweets", lambda: batches() >= 4, timeout, every=5)
        log(f"{batches()} batches in the store")

        train_start = time.monotonic()
        out = stack.run(TRAIN_ONCE, timeout=3600)
        last = out.stdout.strip().splitlines()[-1]
        run_id = json.loads(last).get("run_id")
        log(f"trained {run_id} in {time.monotonic() - train_start:.0f} s: {last}")

        def ready() -> bool:
            return http(f"{api}/readyz")[0] == 200

        ready_s = wait("api /readyz (the trained model loaded)", ready, timeout)
        code, answer = http(f"{api}/classify", {"text": TWEET})
        if code != 200 or not answer or not answer.get("domains") or not answer.get("model_version"):
            fail(f"/classify answered {code}: {answer}")
        version = answer["model_version"]
        log(f"classify: {version}, top {answer['domains'][0]}, predicted {answer['predicted']}")
        code, again = http(f"{api}/classify", {"text": TWEET})
        if code != 200 or not again or again.get("cached") is not True:
            fail(f"a repeated text is not answered from the Redis cache: {code} {again}")
        log("classify again: answered from the Redis cache")
        # The collector restarts at the end of each replay (restart: unless-stopped); it answers
        # /healthz again once it runs.
        wait("collector /healthz (still collecting)", lambda: stack.healthy("collector"), timeout)

        stack.run(RESTART_API)
        wait("api /readyz after the restart", ready, timeout)
        code, again = http(f"{api}/classify", {"text": TWEET})
        if code != 200 or not again or again.get("model_version") != version:
            fail(f"after the restart /classify answered {code}: {again} (model {version} expected)")
        log(f"after the restart the api serves the same model: {version}")
    except BaseException:
        for service in ("minio", "minio-init", "collector", "api"):
            stack.show_logs(service)
        raise
    finally:
        stack.run(DOWN)
        leftovers = stack.leftovers(since=before)
        if leftovers:
            fail(f"`{DOWN}` left {leftovers}")
        log("torn down: no container, volume or network of the project is left")

    log(f"model ready {ready_s:.0f} s after training")
    print(
        f"images=3 compose_ready_s={compose_ready_s} classify=ok api_added_mb={added['api_added_mb']} "
        f"collector_added_mb={added['collector_added_mb']} trainer_added_mb={added['trainer_added_mb']}"
    )


# Run inside the api container, whose environment names the store and its credentials.
COUNT_BATCHES = """
import os, boto3
bucket, _, prefix = os.environ["TWEETDOMAINS_STORE"].removeprefix("s3://").partition("/")
pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/raw/")
print(sum(len(page.get("Contents", [])) for page in pages))
"""


if __name__ == "__main__":
    main()
