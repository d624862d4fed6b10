"""The collector needs no torch: its install set (``.[collector]``) and its imports hold none."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from tests.conftest import ROOT

HEAVY = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(project_requirements: list[str], extras: set[str]) -> set[str]:
    """Every distribution ``pip install .[extras]`` pulls in, from the installed metadata
    (offline: the dev environment holds a superset of every extra)."""
    seen: set[str] = set()
    todo = [(Requirement(r), extras) for r in project_requirements]
    while todo:
        requirement, active = todo.pop()
        environment = {"extra": ""}
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({**environment, "extra": e}) for e in (active or {""})
        ):
            continue
        name = _norm(requirement.name)
        if name == "tweetdomains":  # a self-reference such as tweetdomains[collector,trainer]
            for r in md.requires("tweetdomains") or []:
                todo.append((Requirement(r), set(requirement.extras)))
            continue
        key = name + "[" + ",".join(sorted(requirement.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        for r in md.requires(requirement.name) or []:
            todo.append((Requirement(r), set(requirement.extras)))
    return {k.split("[")[0] for k in seen}


def test_collector_install_set_has_no_torch() -> None:
    requirements = md.requires("tweetdomains") or []
    collector = _closure(requirements, {"collector"})
    assert {"tweepy", "boto3", "prometheus-client", "pydantic-settings", "tqdm"} <= collector
    assert not [name for name in collector if HEAVY.match(name)], sorted(collector)
    # The check itself sees torch where it is: the trainer's extra.
    assert "torch" in _closure(requirements, {"trainer"})


def test_collector_runs_without_importing_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tweetdomains_cli.main import main\n"
        f"code = main(['collect', '--source', 'simulate:1', '--limit', '50', '--store', {str(tmp_path)!r},"
        f" '--spool-dir', {str(tmp_path / 'spool')!r}])\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')]\n"
        "assert code == 0 and not heavy, (code, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_image_build_checks_the_installed_set() -> None:
    dockerfile = (ROOT / "services" / "collector" / "Dockerfile").read_text()
    # Only the collector extra's requirements, then the project from a clean copy, checked.
    assert "requirements.py collector" in dockerfile and "check_no_torch.sh" in dockerfile
    assert "check_installed.py" in dockerfile
    instructions = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    assert "torch" not in "\n".join(instructions).replace("check_no_torch", "")
    assert "USER 10001" in dockerfile and "HEALTHCHECK" in dockerfile  # numeric: k8s runAsNonRoot checks it
