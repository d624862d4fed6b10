"""Fails unless every package pyproject.toml maps (``[tool.setuptools] package-dir``) is
installed with exactly the files of the source tree given: same files, same bytes.

The images run it right after installing the project, so a stale build directory or a stub
from the dependency layer can never reach an image again.

    python check_installed.py /src              # /src holds pyproject.toml and the sources
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but bytecode: modules and package data."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    config = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]
    problems = []
    for package, directory in config["package-dir"].items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            problems.append(f"{package}: not installed")
            continue
        installed_dir = Path(next(iter(spec.submodule_search_locations))).resolve()
        if installed_dir.is_relative_to(source):
            problems.append(f"{package}: imported from the source tree ({installed_dir}), not installed")
            continue
        wanted, installed = files(source / directory), files(installed_dir)
        for name in sorted(wanted.keys() - installed.keys()):
            problems.append(f"{package}/{name}: in the source, not installed")
        for name in sorted(installed.keys() - wanted.keys()):
            problems.append(f"{package}/{name}: installed, not in the source (stale)")
        for name in sorted(wanted.keys() & installed.keys()):
            if wanted[name] != installed[name]:
                problems.append(f"{package}/{name}: installed file differs from the source")
    if problems:
        print("the installed project is not the copied source:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print(f"ok: {len(config['package-dir'])} packages installed as copied from {source}")


if __name__ == "__main__":
    main()
