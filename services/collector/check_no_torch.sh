#!/usr/bin/env sh
# Fails when the Python environment given (default: the `python` on PATH) holds torch, CUDA
# wheels or triton. The collector image runs it at build time: the collector must not need torch.
set -eu
PYTHON="${1:-python}"
"$PYTHON" - <<'PY'
import importlib.metadata as md
import re
import sys

heavy = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*)$")
names = sorted({(d.metadata["Name"] or "").lower() for d in md.distributions()})
found = [n for n in names if heavy.match(n)]
if found:
    print("collector environment must not contain torch or CUDA packages, found: " + ", ".join(found))
    sys.exit(1)
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    print("torch is importable in the collector environment")
    sys.exit(1)
import tweetdomains_collector.cli  # noqa: F401  the collector must import without torch

print(f"ok: {len(names)} distributions, no torch")
PY
