"""The run store: files, the SQLite index, train-once, resume, lookups, removal, many writers."""

import json
import os
import subprocess
import sys
import textwrap
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
import yaml

from reslab.cli import main
from reslab.errors import ConfigError, DataError, ReslabError, UnknownModelError
from reslab.runs import RunStore
from reslab.train import Callback, Recipe, TrainConfig


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_mlp(seed=0, steps=4, **changes):
    """A few steps of a 2-block MLP on 64 synthetic vectors: a run costs milliseconds."""
    return TrainConfig(
        "mlp_plain",
        "identity",
        model_options={"depth": 2, "width": 8},
        data_options={"train_size": 64, "val_size": 16, "test_size": 16, "dim": 4},
        recipe=Recipe(steps=steps, batch_size=16),
        eval_train_size=16,
        seed=seed,
        **changes,
    )


class Count(Callback):
    def __init__(self):
        self.starts = 0

    def on_start(self, ctx):
        self.starts += 1


def test_a_run_directory_holds_everything(tmp_path):
    store = RunStore(tmp_path / "store")
    record = store.run(tiny_mlp())
    assert record.status == "finished" and record.dir.parent == tmp_path / "store" / "runs"
    names = {p.name for p in record.dir.iterdir()}
    assert {"config.yaml", "env.json", "metrics.jsonl", "checkpoint.pt", "model.pt", "result.json"} <= names
    assert TrainConfig.from_yaml((record.dir / "config.yaml").read_text()) == tiny_mlp()
    assert yaml.safe_load((record.dir / "config.yaml").read_text())["hash"] == record.hash == tiny_mlp().hash()
    env = json.loads((record.dir / "env.json").read_text())
    assert {"python", "torch", "numpy", "platform", "cpu", "gpu", "git_commit", "git_dirty"} <= set(env)
    assert env["torch"] == torch.__version__
    state = torch.load(record.dir / "model.pt", weights_only=True)
    model = record.load_model()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert record.result == json.loads((record.dir / "result.json").read_text())


def test_a_finished_config_is_not_trained_again(tmp_path):
    store = RunStore(tmp_path)
    first, counter = store.run(tiny_mlp(), callbacks=[c1 := Count()]), Count()
    again = RunStore(tmp_path).run(tiny_mlp(), callbacks=[counter])  # a new store object: the index on disk
    assert c1.starts == 1 and counter.starts == 0
    assert again.dir == first.dir and again.result == first.result
    other = store.run(tiny_mlp(seed=1), callbacks=[counter])
    assert counter.starts == 1 and other.dir != first.dir and store.index.count() == 2


def test_an_interrupted_run_resumes_in_its_directory(tmp_path):
    class StopAt(Callback):
        def on_step(self, ctx, metrics):
            if ctx.step == 3:
                ctx.extra["stop"] = True

    store = RunStore(tmp_path)
    cfg = tiny_mlp(steps=8, deterministic=True)
    stopped = store.run(cfg, callbacks=[StopAt()])
    assert stopped.status == "stopped" and store.lookup(cfg).status == "stopped"
    resumed = store.run(cfg)
    assert resumed.status == "finished" and resumed.result["resumed"] == 1 and resumed.result["steps"] == 8
    whole = RunStore(tmp_path / "other").run(cfg)
    a, b = (torch.load(r.dir / "model.pt", weights_only=True) for r in (resumed, whole))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_left_running_by_a_dead_process_is_resumed(tmp_path):
    store = RunStore(tmp_path)
    cfg = tiny_mlp(steps=6)
    record = store.run(cfg)
    # make it look like a process died after its step-6 checkpoint but before the end
    (record.dir / "result.json").unlink()
    (record.dir / "model.pt").unlink()
    store.index.upsert(record.hash, status="running")
    assert store.lookup(cfg).status == "interrupted"  # "running" in the index, but no process holds its lock
    again = store.run(cfg)
    assert again.status == "finished" and again.dir == record.dir and again.result["resumed"] == 1


def test_find_get_and_rm(tmp_path):
    store = RunStore(tmp_path)
    runs = [store.run(tiny_mlp(seed=s)) for s in range(3)]
    assert len(store.find()) == 3 and len(store.find("seed=1")) == 1 and store.find("status=diverged") == []
    assert [r.id for r in store.find("s2-")] == [runs[2].id]
    assert store.get(runs[1].id).hash == runs[1].hash
    assert store.get(runs[1].hash[:8]).id == runs[1].id
    assert store.get(runs[1].dir).id == runs[1].id
    with pytest.raises(ReslabError, match="matches 3 runs"):
        store.get("mlp_plain")
    with pytest.raises(ReslabError, match="no run"):
        store.get("nothing-like-this")
    with store._lock(runs[0].hash), pytest.raises(ReslabError, match="another process"):
        store.rm(runs[0].id)  # refused while it trains
    store.rm(runs[0].id)
    assert not runs[0].dir.exists() and len(store.find()) == 2


def test_out_puts_the_directory_elsewhere_and_indexes_it(tmp_path):
    store = RunStore(tmp_path / "store")
    record = store.run(tiny_mlp(), out=tmp_path / "elsewhere")
    assert record.dir.parent == tmp_path / "elsewhere" and store.get(record.id).dir == record.dir


@pytest.mark.parametrize(
    "cfg, error",
    [
        (TrainConfig("resnet21", "identity"), UnknownModelError),
        (TrainConfig("mlp_plain", "imagenet"), ConfigError),
        (TrainConfig("mlp_plain", "cifar10"), DataError),
        (tiny_mlp().replace(model_options={"depth": 0}), ConfigError),
    ],
)
def test_a_bad_config_leaves_nothing_behind(tmp_path, monkeypatch, cfg, error):
    monkeypatch.setenv("RESLAB_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    store = RunStore(tmp_path / "store")
    with pytest.raises(error):
        store.run(cfg)
    assert list((tmp_path / "store" / "runs").iterdir()) == [] and store.index.count() == 0


WRITER = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_runs import tiny_mlp
    from reslab.runs import RunStore
    store = RunStore(sys.argv[1])
    worker = int(sys.argv[2])
    for i in range(25):
        assert store.run(tiny_mlp(seed=1000 * worker + i, steps=2)).status == "finished"
    """
)


def test_four_processes_writing_25_runs_each_end_with_100_runs(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "store"), str(w)], env=env, stderr=subprocess.PIPE
        )
        for w in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    store = RunStore(tmp_path / "store")
    assert store.index.count() == 100
    records = store.find()
    assert len({r.hash for r in records}) == 100 and all(r.status == "finished" for r in records)
    assert len(list((tmp_path / "store" / "runs").iterdir())) == 100


SAME = textwrap.dedent(
    """
    import os, sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_runs import tiny_mlp
    from reslab.runs import RunStore
    from reslab.train import Callback

    class Mark(Callback):
        def on_start(self, ctx):
            with open(sys.argv[2], "a") as f:
                f.write(f"{{os.getpid()}}\\n")

    record = RunStore(sys.argv[1]).run(tiny_mlp(steps=300), callbacks=[Mark()])
    print(record.status, record.dir)
    """
)


def test_two_processes_asking_for_one_config_train_it_once(tmp_path):
    script = tmp_path / "same.py"
    script.write_text(SAME.format(tests=str(Path(__file__).parent)))
    marks = tmp_path / "trained-by"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "store"), str(marks)], env=env, stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].decode().split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] and outs[0][0] == "finished"
    assert len(marks.read_text().split()) == 1  # one process trained, the other waited and found it done


def test_cli_train_then_runs_ls_show_rm(tmp_path, capsys):
    store = str(tmp_path / "store")
    args = ["train", "--model", "mlp_plain", "--data", "identity", "--model-opt", "depth=2", "--model-opt",
            "width=8", "--train-size", "64", "--val-size", "16", "--data-opt", "test_size=16", "--data-opt", "dim=4",
            "--batch-size", "16", "--max-steps", "4", "--eval-train-size", "16", "--store", store]  # fmt: skip
    assert main(args) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (run_dir / "result.json").is_file() and run_dir.parent == tmp_path / "store" / "runs"
    assert main(args) == 0  # the second time: nothing trained, the same directory last
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("already trained") and Path(out[-1]) == run_dir
    assert main(["runs", "ls", "model=mlp*", "--store", store]) == 0
    out = capsys.readouterr().out
    assert run_dir.name in out and "finished" in out and "1 run(s)" in out
    assert main(["runs", "show", run_dir.name[:22], "--store", store]) == 0
    out = capsys.readouterr().out
    assert f"dir:     {run_dir}" in out and "test_error:" in out and "python" in out
    assert main(["runs", "rm", run_dir.name, "--store", store]) == 0
    assert not run_dir.exists()
    assert main(["runs", "show", run_dir.name, "--store", store]) == 2
    assert "no run" in capsys.readouterr().err


def test_cli_train_errors_are_one_line_with_exit_2(tmp_path, capsys):
    store = str(tmp_path / "store")
    for args, words in [
        (["--model", "resnet20", "--data", "synthetic-images", "--lr", "-0.1"], "lr must be"),
        (
            ["--model", "resnet20", "--data", "synthetic-images", "--epochs", "1", "--max-steps", "3"],
            "not allowed with",
        ),
        (["--model", "resnet20", "--data", "synthetic-images", "--model-opt", "depth=21"], "depth 21 is impossible"),
    ]:
        with pytest.raises(SystemExit) if "--max-steps" in args else nullcontext():
            assert main(["train", "--store", store, *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    for args, words in [  # the real entry point, in a process of its own
        (["--model", "no_such_net", "--data", "synthetic-images"], "unknown model"),
        (["--model", "resnet20", "--data", "no_such_data"], "unknown dataset"),
    ]:
        cmd = [sys.executable, "-m", "reslab", "train", "--store", store, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    assert list((tmp_path / "store" / "runs").iterdir()) == []
