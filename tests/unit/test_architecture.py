"""What the import contracts (``lint-imports``, run by ``make lint``) cannot see.

The contracts check the imports that exist; an import of a module that was moved or renamed
(``tweetdomains.cli``, ``tweetdomains.pretrained``) inside a function fails only when that
code path runs. Every first-party import in the project must name a module that exists.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from tests.conftest import ROOT

FIRST_PARTY = ("tweetdomains", "tweetdomains_collector", "tweetdomains_trainer", "tweetdomains_api")
FIRST_PARTY += ("tweetdomains_cli", "tests")
FOLDERS = ("shared", "services", "tests", "benchmarks", "reliability")


def _imports(path: Path) -> set[str]:
    """Every absolute import in the file, at module level or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_first_party_import_names_a_module_that_exists() -> None:
    missing = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in sorted(m for m in _imports(path) if m.split(".")[0] in FIRST_PARTY):
                if importlib.util.find_spec(module) is None:
                    missing.append(f"{path.relative_to(ROOT)}: {module}")
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_the_library_starts_nothing() -> None:
    """No process, server or command line in the library: the launcher and services own those."""
    starters = {"subprocess", "multiprocessing", "argparse", "uvicorn"}
    offenders = []
    for path in sorted((ROOT / "shared" / "tweetdomains").rglob("*.py")):
        found = {m.split(".")[0] for m in _imports(path)} & starters
        if found:
            offenders.append(f"{path.relative_to(ROOT)}: {', '.join(sorted(found))}")
    assert not offenders, offenders


def test_every_first_party_from_import_names_something_the_module_has() -> None:
    """``from tweetdomains_trainer.train import make_optimizer`` after a move fails only when it
    runs: every name imported from a project module must exist there (or be its submodule)."""
    import importlib

    missing = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
                    continue
                if node.module.split(".")[0] not in FIRST_PARTY or node.module.startswith("tests"):
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    name = alias.name
                    exists = name == "*" or hasattr(module, name)
                    if not exists and importlib.util.find_spec(f"{node.module}.{name}") is None:
                        missing.append(f"{path.relative_to(ROOT)}: {node.module}.{name}")
    assert not missing, "imported names that do not exist:\n" + "\n".join(missing)


def test_every_package_folder_is_installed() -> None:
    """A sub-package missing from ``[tool.setuptools] packages`` works in the editable install the
    tests use and is absent from every image (``pip install .``)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *parts)))
    assert found <= listed, (
        f"package folders missing from pyproject.toml's packages: {sorted(found - listed)}"
    )
