"""The requirements of ``tweetdomains[EXTRA,...]`` read from pyproject.toml, one a line.

The images install their dependencies from these lines before the source is copied, so a code
change does not reinstall them; pyproject.toml stays the one list of dependencies and packages.

    python requirements.py api                  # everything .[api] needs, torch included
    python requirements.py api --only torch     # the torch pin alone
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path


def name_of(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def requirements(project: dict, extras: list[str]) -> list[str]:
    """The base dependencies and those of each extra; ``tweetdomains[x]`` is expanded."""
    optional = project.get("optional-dependencies", {})
    own = project["name"].lower()
    out = list(project.get("dependencies", []))
    seen: set[str] = set()
    pending = list(extras)
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"pyproject.toml has no extra named {extra!r}: {sorted(optional)}")
        seen.add(extra)
        for requirement in optional[extra]:
            if name_of(requirement) == own:
                pending += re.findall(r"[\w-]+", requirement.split("[", 1)[1])
            else:
                out.append(requirement)
    return list(dict.fromkeys(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", nargs="+")
    parser.add_argument("--only", help="print only the requirement of this distribution")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args()
    project = tomllib.loads(args.pyproject.read_text())["project"]
    lines = requirements(project, args.extras)
    if args.only:
        lines = [line for line in lines if name_of(line) == args.only.lower()]
        if not lines:
            raise SystemExit(f"tweetdomains[{','.join(args.extras)}] does not require {args.only}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
