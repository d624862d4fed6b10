"""The README's ``## Deploy`` section names only things that exist: images, compose services,
Kubernetes resources and overlays, environment variables and files."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from types import ModuleType

import pytest

from tests.system.test_deploy_static import (
    COMPOSE,
    COMPOSE_GPU,
    ENV_EXAMPLE,
    K8S,
    OVERLAYS,
    ROOT,
    SERVICES,
    documents,
    env_example,
    load_yaml,
    settings_env_names,
)

README = ROOT / "README.md"
# `kubectl` short and long kind names, as the README may write them (`deploy/tweetdomains-api`).
KINDS = {
    "deploy": "Deployment",
    "deployment": "Deployment",
    "cronjob": "CronJob",
    "cj": "CronJob",
    "job": "Job",
    "svc": "Service",
    "service": "Service",
    "hpa": "HorizontalPodAutoscaler",
    "horizontalpodautoscaler": "HorizontalPodAutoscaler",
    "pdb": "PodDisruptionBudget",
    "poddisruptionbudget": "PodDisruptionBudget",
    "sa": "ServiceAccount",
    "serviceaccount": "ServiceAccount",
    "secret": "Secret",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
    "pvc": "PersistentVolumeClaim",
    "networkpolicy": "NetworkPolicy",
}
ENV_PREFIXES = ("TWEETDOMAINS_", "AWS_", "X_", "MINIO_", "COLLECTOR_", "TRAINER_", "S3_", "API_PORT")


@cache
def deploy_section() -> str:
    text = README.read_text() if README.exists() else ""
    match = re.search(r"^## Deploy\b.*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if not match:
        pytest.skip("README.md has no `## Deploy` section yet (the lead pastes it in before CI)")
    return match.group(0)


@cache
def all_k8s(workdir: str) -> list[dict]:
    return [doc for overlay in OVERLAYS for doc in documents(overlay, workdir)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("readme-k8s"))


def deploy_files_text() -> str:
    files = [COMPOSE, COMPOSE_GPU, ENV_EXAMPLE, *K8S.rglob("*.yaml"), *K8S.rglob("*.example")]
    files += [path for path in (ROOT / "deploy").rglob("*") if path.is_file()]
    return "\n".join(path.read_text() for path in files)


def test_images_named_exist() -> None:
    section = deploy_section()
    compose_images = {s["image"].split(":")[0] for s in load_yaml(COMPOSE)["services"].values()}
    named = set(re.findall(r"\b(tweetdomains-(?:api|collector|trainer|[a-z]+))(?=[:\s`@]|$)", section))
    named = {n for n in named if n.removeprefix("tweetdomains-") in SERVICES or n in compose_images}
    assert named, "the section names no image"
    assert named <= compose_images
    for third_party in re.findall(r"\b((?:redis|minio/minio|minio/mc):[\w.\-]+)", section):
        assert third_party in deploy_files_text(), third_party


def code_in(section: str) -> list[str]:
    """The commands of the section: fenced code lines and inline code spans, comments cut."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", section, re.DOTALL)
    prose = re.sub(r"```.*?```", "", section, flags=re.DOTALL)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`([^`\n]+)`", prose.replace("\n", " "))
    commands = []
    for line in lines:
        for command in re.split(r"&&|;|\|", line.split(" #")[0]):
            commands.append(command.strip())
    return commands


def test_compose_services_named_exist() -> None:
    section = deploy_section()
    services = set(load_yaml(COMPOSE)["services"])
    named = set()
    for command in code_in(section):
        if not command.startswith("docker compose"):
            continue
        words = command.split()
        named |= set(re.findall(r"--scale\s+([a-z-]+)=", command))
        verbs = [
            i for i, w in enumerate(words) if w in ("run", "up", "logs", "stop", "restart", "exec", "start")
        ]
        if verbs:
            rest = words[verbs[0] + 1 :]
            flags_with_value = {"--scale", "--entrypoint", "-e", "--env", "-u", "--user", "-w"}
            skip = False
            for word in rest:
                if skip:
                    skip = False
                elif word in flags_with_value:
                    skip = True
                elif word.startswith("-"):
                    continue
                else:
                    named.add(word)  # the service; what follows is its command
                    break
    assert named, "the section names no compose service"
    assert named <= services, named - services


def test_kubernetes_resources_and_overlays_named_exist(workdir: str) -> None:
    section = deploy_section()
    docs = all_k8s(workdir)
    existing = {(d["kind"], d["metadata"]["name"]) for d in docs}
    generated = {(kind, name.rsplit("-", 1)[0]) for kind, name in existing if kind in ("ConfigMap", "Secret")}
    named = {
        (KINDS[kind.lower()], name)
        # A file path (`deploy/images.sh`) is no resource: the name is followed by `.`, `_` or `/`.
        for kind, name in re.findall(r"\b([A-Za-z]+)/([a-z0-9][a-z0-9-]*[a-z0-9])(?![\w/-]|\.\w)", section)
        if kind.lower() in KINDS
    }
    named |= {("Job", name) for name in re.findall(r"delete job ([a-z0-9-]+)", section)}
    assert named, "the section names no Kubernetes resource"
    # Jobs the section itself creates from the CronJob (`kubectl create job --from=cronjob/X NAME`).
    created = {
        ("Job", name) for name in re.findall(r"create job --from=cronjob/[a-z0-9-]+ ([a-z0-9-]+)", section)
    }
    missing = {(kind, name) for kind, name in named if (kind, name) not in existing | generated | created}
    assert missing == set(), missing
    for overlay in re.findall(r"k8s/overlays/([a-z0-9-]+)", section):
        assert overlay in OVERLAYS, overlay
    for path in re.findall(
        r"(?<![\w/.])((?:k8s|services)/[\w./-]+|docker-compose[\w.]*\.yml|\.env\.example)", section
    ):
        path = path.rstrip(".")
        if path.endswith("secrets.env"):  # the user creates it from the committed example
            path += ".example"
        assert (ROOT / path).exists(), path


def test_environment_variables_named_exist() -> None:
    section = deploy_section()
    named = {v for v in re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", section) if v.startswith(ENV_PREFIXES)}
    assert named, "the section names no environment variable"
    known = set(env_example()) | set().union(*(settings_env_names(s) for s in SERVICES))
    files = deploy_files_text()
    unknown = {v for v in named if v not in known and not re.search(rf"\b{v}\b", files)}
    assert unknown == set()


def compose_smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_smoke", ROOT / "deploy" / "compose_smoke.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_compose_commands_are_the_ones_the_smoke_test_runs() -> None:
    """The first command block of "### Docker Compose" is what `make compose-smoke` runs, in
    the same order: every `docker compose` command of it, and no other."""
    section = deploy_section()
    match = re.search(r"^### Docker Compose\b.*?(?=^### |\Z)", section, re.MULTILINE | re.DOTALL)
    assert match, "no `### Docker Compose` section"
    blocks = re.findall(r"```bash\n(.*?)```", match.group(0), re.DOTALL)
    assert blocks, "the compose section shows no commands"
    shown = [c for c in code_in(f"```bash\n{blocks[0]}```") if c.startswith("docker compose")]
    assert shown == [" ".join(c.split()) for c in compose_smoke().README_COMMANDS]
