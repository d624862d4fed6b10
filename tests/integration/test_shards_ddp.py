"""Two torchrun CPU processes (gloo on loopback) stream disjoint shards in equal steps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tweetdomains import codecs
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore

RANK_SCRIPT = """
import json, sys
import torch, torch.distributed as dist
from torch import nn
from tweetdomains.model import ModelConfig, bce_loss, build_model
from tweetdomains.store import LocalStore
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.stream import StreamPosition, stream_batches
from tweetdomains_trainer.steps import make_optimizer, train_step

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
store = LocalStore(sys.argv[1])
if rank == 0:  # one rank shards the batches; the others find them in the store
    ShardedCorpus.prepare(store, workers=1)
dist.barrier()
corpus = ShardedCorpus.prepare(store, workers=1)
torch.manual_seed(0)
config = ModelConfig(
    vocab_size=len(corpus.vocab), num_labels=len(corpus.labels), embedding_dim=8, hidden_dim=8
)
model = nn.parallel.DistributedDataParallel(build_model(config))
optimizer = make_optimizer(model, 0.01)
split, keys, steps = corpus.train, set(), 0
for epoch in range(2):
    position = StreamPosition(epoch, 0)
    for rows in stream_batches(split, 8, seed=5, position=position, rank=rank, world_size=world):
        parts, _ = split.locate(rows)
        keys.update(f"{epoch}:{split.parts[p].key}" for p in set(parts.tolist()))
        train_step(model, split.batch(rows), optimizer, bce_loss(None, 0.0), torch.device("cpu"))
        steps += 1
weights = float(sum(p.detach().double().sum() for p in model.parameters()))
result = {"rank": rank, "steps": steps, "keys": sorted(keys), "tokenized": corpus.counts.tokenized}
with open(f"{sys.argv[2]}/rank{rank}.json", "w") as out:  # one file a rank: their stdout interleaves
    json.dump({**result, "weights": weights}, out)
# Both ranks reach the teardown together: a rank that tears gloo down while its peer still
# talks to it can abort ("terminate called without an active exception", seen on a busy host).
dist.barrier()
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_torchrun_processes_read_disjoint_shards_in_equal_steps(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for i in range(6):
        store.put(f"raw/2026/11/29/{i:02d}/b.jsonl.gz", codecs.write_jsonl_gz(generate(80, seed=i)))
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT, encoding="utf-8")
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
    ]
    argv += ["--master-port", str(free_port()), str(script), str(store.root), str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [x["rank"] for x in lines] == [0, 1]
    assert lines[0]["steps"] == lines[1]["steps"] > 0  # the same number of steps on every rank
    for epoch in ("0:", "1:"):
        mine = [{k for k in x["keys"] if k.startswith(epoch)} for x in lines]
        assert mine[0] and mine[1] and mine[0].isdisjoint(mine[1])  # disjoint shards each epoch
    assert lines[1]["tokenized"] == 0  # rank 1 re-used rank 0's shards
    assert lines[0]["weights"] == pytest.approx(lines[1]["weights"], rel=1e-9)  # DDP kept them in step


@pytest.mark.slow
def test_torchrun_train_on_the_store_streams_disjoint_shards_per_rank(tmp_path: Path) -> None:
    """``tweetdomains train --store`` (no --data) under torchrun: rank 0 shards the batches,
    each rank streams its own shards every epoch, in equal steps, and the run is published once."""
    store = LocalStore(tmp_path / "store")
    for i in range(6):
        store.put(f"raw/2026/11/29/{i:02d}/b.jsonl.gz", codecs.write_jsonl_gz(generate(80, seed=i)))
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr"]
    argv += ["127.0.0.1", "--master-port", str(free_port()), "-m", "tweetdomains", "train"]
    argv += ["--store", str(store.root), "--run-id", "ddp-shards", "--epochs", "2", "--embedding-dim", "8"]
    argv += ["--hidden-dim", "8", "--batch-size", "8", "--device", "cpu", "--no-progress", "--threads", "1"]
    argv += ["--log-level", "DEBUG"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 2 and sum(r["published"] for r in results) == 1
    found = re.findall(r"rank (\d) of 2, epoch (\d): \d+ of 6 shards, (\d+) steps", done.stderr)
    steps = {(rank, epoch): int(n) for rank, epoch, n in found}
    assert len(steps) == 4 and steps[("0", "1")] == steps[("1", "1")] > 0
    assert steps[("0", "2")] == steps[("1", "2")] > 0
    shards = {
        m[:2]: set(m[2].split()) for m in re.findall(r"rank (\d), epoch (\d) shards: (.*)", done.stderr)
    }
    for epoch in ("1", "2"):
        mine, theirs = shards[("0", epoch)], shards[("1", epoch)]
        assert mine and theirs and mine.isdisjoint(theirs)
        assert len(mine | theirs) == 6
