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
