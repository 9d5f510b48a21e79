"""One run across 2 CPU processes: ``torchrun --nproc_per_node=2 -m reslab train`` (gloo).

Tolerance of the 1-process comparison: both runs compute in fp32 (``--precision fp32``; bf16
autocast rounds a half batch differently from a whole one, ~1e-4 relative per step) on a
net without BatchNorm, so the two ranks' mean gradient is the global batch's gradient up to
the order of fp32 additions (relative 1e-7 per step). Through 200 SGD steps at lr 0.02 the
curves measured here differ by at most 2e-6 relative; the test allows 1e-4 (50x margin).
A bug that changes what is trained (a rank on the wrong rows, gradients summed or not
reduced, per-rank statistics) differs by 1e-3 or more from the second step on. At a
larger rate (0.05) the same rounding grows chaotically (5e-4 by step 140), which is why the
comparison uses 0.02. BatchNorm is per rank by construction: that test compares with the
per-rank statistics emulated in one process instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reslab.cli import main
from reslab.data import BatchLoader, load_dataset
from reslab.data.base import Split
from reslab.data.loader import Augment
from reslab.runs.store import RunStore
from reslab.train import Task, TrainConfig, build_model
from reslab.train.checkpoint import load_torch
from reslab.train.recipe import Recipe
from reslab.train.setup import make_optimizer

pytestmark = pytest.mark.slow

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "reslab"]
ARGS = ["train", "--model", "mlp_plain", "--data", "fashion-mnist", "--model-opt", "depth=2", "--model-opt", "width=16",
        "--train-size", "512", "--val-size", "64", "--data-opt", "test_size=64", "--eval-train-size", "64",
        "--batch-size", "32", "--lr", "0.02", "--schedule", "constant", "--max-steps", "200", "--log-every", "5",
        "--checkpoint-every", "50", "--precision", "fp32", "--deterministic"]  # fmt: skip
RTOL = 1e-4


def _torchrun(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*TORCHRUN, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            **kwargs)  # fmt: skip


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same run in one process (here) and in two (torchrun): their stores."""
    root = tmp_path_factory.mktemp("ddp")
    two = _torchrun(*ARGS, "--store", str(root / "two"))  # trains while this process trains its own
    assert main([*ARGS, "--store", str(root / "one")]) == 0
    code, out = _finish(two)
    assert code == 0, out
    return {"one": RunStore(root / "one").find()[0], "two": RunStore(root / "two").find()[0], "out": out}


def _curve(record, kind: str, key: str) -> list[tuple[int, float]]:
    return [(m["step"], m[key]) for m in record.metrics() if m["kind"] == kind]


def test_two_processes_follow_one_process_with_the_same_global_batch(pair):
    one, two = pair["one"], pair["two"]
    for kind, key in (("train", "loss"), ("eval", "val_loss"), ("eval", "train_eval_loss")):
        a, b = _curve(one, kind, key), _curve(two, kind, key)
        assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 6
        assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=RTOL), (kind, key)
    assert two.result["status"] == "finished" and two.result["steps"] == 200
    assert two.config.ranks == 2 and one.config.ranks == 1 and one.hash != two.hash  # another experiment


def test_rank_zero_alone_writes_the_run(pair):
    two = pair["two"]
    assert sorted(p.name for p in two.dir.iterdir()) == sorted(p.name for p in pair["one"].dir.iterdir())
    assert len(list(two.dir.parent.iterdir())) == 1  # one run directory, one index row
    assert RunStore(two.dir.parent.parent).index.count() == 1
    steps = [(m["kind"], m["step"]) for m in two.metrics()]
    assert len(steps) == len(set(steps))  # each line once: rank 1 wrote none
    assert pair["out"].count("finished: 200 steps") == 1 and pair["out"].strip().endswith(str(two.dir))
    assert len(load_torch(two.dir / "checkpoint.pt")["rng_ranks"]) == 2


def _ranks_of(pid: int) -> list[int]:
    """The processes torchrun started (its children running reslab)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"reslab" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(int(child))
    return out


def _interrupt_at(proc: subprocess.Popen, store: Path, step: int) -> None:
    """Ctrl-C every rank once rank 0 logged ``step``, as a terminal would."""
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        logs = list(store.glob("runs/*/metrics.jsonl"))
        if logs and any(json.loads(line)["step"] >= step for line in logs[0].read_text().splitlines()[-2:]):
            break
        time.sleep(0.01)
    for pid in _ranks_of(proc.pid):
        os.kill(pid, signal.SIGINT)


def test_a_resumed_two_process_run_ends_equal_to_an_uninterrupted_one(pair, tmp_path, capsys):
    store = tmp_path / "store"
    proc = _torchrun(*ARGS, "--store", str(store))
    _interrupt_at(proc, store, 10)
    code, out = _finish(proc)
    (record,) = RunStore(store).find()
    assert code != 0 and record.status in ("stopped", "interrupted"), out
    assert f"continue with: torchrun --nproc_per_node=2 -m reslab train --resume {record.dir}" in out
    stopped_at = load_torch(record.dir / "checkpoint.pt")["step"]
    assert 10 <= stopped_at < 200

    assert main(["train", "--resume", str(record.dir), "--store", str(store)]) == 2  # one process cannot continue it
    assert "start it with torchrun --nproc_per_node=2 -m reslab train" in capsys.readouterr().err

    code, out = _finish(_torchrun("train", "--resume", str(record.dir), "--store", str(store)))
    assert code == 0, out
    (resumed,) = RunStore(store).find()
    assert resumed.result["resumed"] == 1 and resumed.result["status"] == "finished"
    assert resumed.metrics() and [m.get("loss") for m in resumed.metrics()] == [
        m.get("loss") for m in pair["two"].metrics()
    ]
    ours, theirs = load_torch(resumed.dir / "model.pt"), load_torch(pair["two"].dir / "model.pt")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)  # bit for bit


def _one_step(config: TrainConfig, per_rank: bool) -> dict[str, torch.Tensor]:
    """The first step in one process, BatchNorm over each rank's half batch (``per_rank``) or the whole batch."""
    ds = load_dataset(config.data, config.data_dir, **config.data_options)
    torch.manual_seed(config.seed)
    model, _ = build_model(config, ds)
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    task = Task(ds.task, 0.0)
    shards = [(r, 2) for r in range(2)] if per_rank else [(0, 1)]
    batches = [BatchLoader(ds.train, 32, seed=config.seed, mean=ds.mean, std=ds.std, shard=s).next() for s in shards]
    losses, kept = [], None
    for x, y in batches:
        losses.append(task.loss(model(x), y))
        kept = kept or {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "batches" in k}
    (sum(losses) / len(losses)).backward()  # DDP averages the ranks' gradients
    optimizer.step()
    return {**model.state_dict(), **kept}  # the running statistics kept are rank 0's


def test_batchnorm_statistics_are_per_rank(tmp_path):
    args = [a if a != "mlp_plain" else "mlp_plain_bn" for a in ARGS]
    args[args.index("--max-steps") + 1] = "1"
    code, out = _finish(_torchrun(*args, "--store", str(tmp_path)))
    assert code == 0, out
    (record,) = RunStore(tmp_path).find()
    trained = load_torch(record.dir / "model.pt")
    config = record.config.replace(device="cpu")
    per_rank, whole = _one_step(config, per_rank=True), _one_step(config, per_rank=False)
    assert any(k.endswith("running_mean") for k in trained)
    for k, v in trained.items():
        assert torch.allclose(v.float(), per_rank[k].float(), rtol=RTOL, atol=1e-7), k
    assert max(float((trained[k].float() - whole[k].float()).abs().max()) for k in trained) > 1e-3


def test_ranks_share_each_global_batch_exactly():
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(40))
    make = lambda shard: BatchLoader(split, 8, seed=3, augment=Augment(2, True), shard=shard)  # noqa: E731
    whole, halves = make((0, 1)), [make((r, 2)) for r in range(2)]
    for _ in range(12):  # across epochs: order and augmentation as one process draws them
        x, y = whole.next()
        parts = [h.next() for h in halves]
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)


def test_what_a_run_across_processes_refuses(tmp_path, capsys):
    for extra, words in (
        (["--sync-bn"], "--sync-bn applies to a run across processes"),
        (["--batch-size", "33"], None),  # fine in one process: nothing to split
    ):
        code = main([*ARGS, "--max-steps", "2", *extra, "--store", str(tmp_path)])
        err = capsys.readouterr().err
        assert (code == 2 and words in err and err.count("\n") == 1) if words else code == 0, err
    with pytest.raises(Exception, match="cannot be split evenly across 2 ranks"):
        TrainConfig(model="mlp_plain", data="fashion-mnist", recipe=Recipe(batch_size=33), ranks=2)
    with pytest.raises(Exception, match="convergence check trains in one process"):
        TrainConfig(model="mlp_plain", data="fashion-mnist", convergence_check=True, ranks=2)
