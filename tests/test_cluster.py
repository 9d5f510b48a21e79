"""The Ray executor on a local Ray instance (2 CPUs): a sweep with the driver owning the store
(no worker writes into it), the shared-store mode, a killed worker retried from its last
checkpoint and stored once, a run that fails for its own reasons not retried, an interrupted
run continued, and a missing Ray install as one line.

Every Ray worker runs an audit hook (``sys.addaudithook``) that records each file it opens
for writing, renames, creates or deletes under the folder holding the tests' stores, so
"no worker wrote into the store" is observed, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from reslab.cli import main
from reslab.runs.cluster import RayExecutor, RunResources, parse_memory
from reslab.runs.remote import RESUME_FILES, train_in_scratch
from reslab.runs.store import RunStore
from reslab.train import Callback, TrainConfig
from reslab.train.checkpoint import CHECKPOINT
from reslab.train.recipe import Recipe

pytestmark = pytest.mark.slow

WRITES = ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "sqlite3.connect")


def _watch_writes(root: str, record: str):
    """A Ray worker set-up hook: every write under ``root`` that the worker makes is appended to ``record``."""

    def setup() -> None:
        def hook(event: str, args: tuple) -> None:
            if event == "open":
                path, written = args[0], isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR)
            elif event in WRITES:
                path, written = args[0], True
            else:
                return
            if written and isinstance(path, str | bytes | os.PathLike) and os.fsdecode(path).startswith(root):
                with open(record, "a") as f:
                    f.write(f"{os.getpid()} {event} {os.fsdecode(path)}\n")

        sys.addaudithook(hook)

    return setup


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray instance whose workers record their writes under ``stores``."""
    ray = pytest.importorskip("ray")
    stores, record = tmp_path_factory.mktemp("stores"), tmp_path_factory.mktemp("audit") / "writes.txt"
    record.touch()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook travels by value
    hook = _watch_writes(str(stores), str(record))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"worker_process_setup_hook": hook})  # fmt: skip
    yield {"stores": stores, "writes": lambda root: [w for w in record.read_text().splitlines() if str(root) in w]}
    ray.shutdown()


def _tiny(seed: int = 0, steps: int = 3, **fields) -> TrainConfig:
    return TrainConfig(
        model="mlp_plain", data="fashion-mnist", model_options={"depth": 2, "width": 8}, seed=seed,
        data_options={"train_size": 64, "val_size": 32, "test_size": 32}, eval_train_size=32, deterministic=True,
        recipe=Recipe(steps=steps, batch_size=16, schedule="constant", lr=0.05), **fields,
    )  # fmt: skip


SWEEP = """\
data: fashion-mnist
data_options: {train_size: 64, val_size: 32, test_size: 32}
model: mlp_plain
model_options: {depth: 2, width: 8}
recipe: {steps: 4, batch_size: 16, schedule: constant}
eval_train_size: 32
seeds: 2
resources: {cpus: 1, memory: 200MB}
axes:
  lr: {recipe.lr: [0.05, 1.0e+6]}
"""


def test_a_sweep_on_ray_with_the_driver_owning_the_store(cluster, tmp_path, capsys):
    root = cluster["stores"] / "driver-owned"
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    args = ["sweep", str(tmp_path / "sweep.yaml"), "--executor", "ray", "--store", str(root), "--out", str(tmp_path),
            "--ray-cpus", "2"]  # fmt: skip
    assert main(args) == 0  # 2 CPUs a run: two runs out at once on this 2-CPU cluster, two queued
    out = capsys.readouterr().out
    store = RunStore(root)
    records = store.find()
    assert len(records) == 4 and all(r.done for r in records)
    assert sorted(r.status for r in records) == ["diverged", "diverged", "finished", "finished"]  # not retried
    assert "retry" not in out and "(2 diverged)" in out
    for r in records:  # a run as a local run leaves it, from the worker's files
        names = {p.name for p in r.dir.iterdir()}
        assert {"config.yaml", "env.json", "metrics.jsonl", "model.pt", "result.json"} <= names
        assert json.loads((r.dir / "env.json").read_text())["torch"]
    assert cluster["writes"](root) == []  # no worker wrote into the store
    assert (tmp_path / "summary.csv").exists() and out.strip().endswith("summary.html")


def test_shared_store_workers_write_it(cluster):
    """The other mode, and proof that the audit hook sees a worker's writes."""
    root = cluster["stores"] / "shared"
    executor = RayExecutor(shared_store=True, log=lambda line: None)
    records = executor.run_all(RunStore(root), [_tiny(0), _tiny(1)])
    assert all(r.done for r in records) and RunStore(root).index.count() == 2
    assert any("result.json" in w for w in cluster["writes"](root))


def _kill_worker_after_checkpoint(run_dir: Path, killed: list[int]) -> None:
    """Once a checkpoint reached the driver (it is in the store's run directory), SIGKILL the worker."""
    deadline = time.monotonic() + 120
    while not (run_dir / CHECKPOINT).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::train_in_scratch"):
            os.kill(int(proc.name), signal.SIGKILL)
            killed.append(int(proc.name))


def test_a_killed_worker_is_retried_from_its_last_checkpoint_and_stored_once(cluster, tmp_path):
    config = _tiny(steps=2000, checkpoint_every=100, log_every=100).replace(
        data_options={"train_size": 256, "val_size": 32, "test_size": 32}
    )
    root, lines, killed = cluster["stores"] / "killed", [], []
    killer = threading.Thread(target=_kill_worker_after_checkpoint, args=(root / "runs" / config.run_id(), killed))
    killer.start()
    executor = RayExecutor(log=lines.append)
    (record,) = executor.run_all(RunStore(root), [config])
    killer.join()
    assert len(killed) == 1, "no worker was training when its first checkpoint arrived"
    assert any("worker was lost (WorkerCrashedError); retry 1 of 3, from step" in line for line in lines), lines
    assert RunStore(root).index.count() == 1 and record.status == "finished" and record.result["resumed"] == 1
    steps = [(m["kind"], m["step"]) for m in record.metrics()]
    assert len(steps) == len(set(steps)) and steps[-1][1] == 2000  # one line per step and kind: none twice
    alone = RunStore(tmp_path / "local").run(config)  # the same run, never interrupted, in this process
    assert record.result["train_loss"] == alone.result["train_loss"]
    assert [m.get("loss") for m in record.metrics()] == [m.get("loss") for m in alone.metrics()]
    assert cluster["writes"](root) == []


def test_a_run_failing_for_its_own_reasons_is_not_retried(cluster):
    root, lines = cluster["stores"] / "own-failure", []
    bad = _tiny().replace(model="resnet20", model_options={"depth": 21})  # an impossible depth: found on the worker
    executor = RayExecutor(log=lines.append)
    with pytest.raises(Exception, match="depth 21 is impossible") as caught:
        executor.run_all(RunStore(root), [bad])
    executor.close()
    assert type(caught.value).__name__ == "ConfigError"  # the run's own error, not Ray's wrapper
    assert not any("retry" in line for line in lines)
    assert RunStore(root).index.count() == 0  # nothing was trained, nothing is kept


class _StopAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step(self, training, metrics) -> None:
        training.extra["stop"] = training.step >= self.step


def test_an_interrupted_run_continues_on_ray(cluster, tmp_path):
    root, config = cluster["stores"] / "interrupted", _tiny(steps=8, checkpoint_every=2)
    RunStore(root).run(config, callbacks=[_StopAt(4)])  # stopped with a checkpoint at step 4, as a killed sweep
    assert RunStore(root).lookup(config).status == "stopped"
    (record,) = RayExecutor(log=lambda line: None).run_all(RunStore(root), [config])
    alone = RunStore(tmp_path / "local").run(config)
    assert record.result["resumed"] == 1 and record.result["train_loss"] == alone.result["train_loss"]


def test_large_checkpoints_go_to_the_folder_the_user_names(tmp_path):
    """Driver-owned mode with ``keep``: checkpoints are written there, never sent (no Ray needed)."""
    config = _tiny(steps=6, checkpoint_every=2)
    messages = list(train_in_scratch(config, {}, str(tmp_path / "keep"), threads=1))
    assert messages[-1]["done"] and all(CHECKPOINT not in m["files"] for m in messages)
    assert {"model.pt", "result.json", "metrics.jsonl"} <= set(messages[-1]["files"])
    kept = tmp_path / "keep" / config.run_id()
    assert {p.name for p in kept.iterdir()} == set(RESUME_FILES)


def test_resources_are_declared_and_checked():
    assert RunResources(cpus=2, gpus=0.25, memory=parse_memory("1.5GiB")).ray_options(cluster_gpus=1) == {
        "num_cpus": 2, "num_gpus": 0.25, "memory": int(1.5 * 2**30)}  # fmt: skip
    assert RunResources().ray_options(cluster_gpus=8)["num_gpus"] == 1.0
    assert RunResources().ray_options(cluster_gpus=0)["num_gpus"] == 0.0
    for bad in ({"cpus": 0}, {"gpus": 1.5}, {"memory": -1}, {"cpus": "two"}):
        with pytest.raises(Exception, match="per run"):
            RunResources(**bad)


def test_missing_ray_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    args = ["sweep", str(tmp_path / "sweep.yaml"), "--executor", "ray", "--store", str(tmp_path / "store")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "needs Ray, which is not installed: pip install 'reslab[ray]'" in err
