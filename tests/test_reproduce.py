"""The runner: the whole catalogue at smoke scale, its result files and report, resuming
without retraining (also after SIGKILL), the study command, and the executors."""

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
from reslab.report import render_report
from reslab.reproduce import _check_buildable, reproduce
from reslab.runs.executors import LocalExecutor
from reslab.runs.store import RunStore
from reslab.studies.catalogue import all_studies, study_ids
from reslab.studies.results import VERDICTS
from reslab.train import TrainConfig
from reslab.train.recipe import Recipe

pytestmark = pytest.mark.slow


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _finished_runs(store: RunStore) -> dict[str, float]:
    """Run id -> mtime of its result.json, for every finished run."""
    return {r.id: (r.dir / "result.json").stat().st_mtime_ns for r in store.find() if r.done}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    store, out = RunStore(root / "store"), root / "report"
    lines: list[str] = []
    start = time.perf_counter()
    reproduce(out, scale="smoke", store=store, executor=LocalExecutor(log=lines.append), log=lines.append)
    return {"out": out, "store": store, "log": lines, "seconds": time.perf_counter() - start}


def test_smoke_catalogue_writes_every_study(smoke):
    data = _results(smoke["out"])
    assert data["scale"] == "smoke" and data["env"]["torch"]
    assert data["data"] and all(v.startswith(("sha256:", "generated")) for v in data["data"].values())
    assert [s["id"] for s in data["studies"]] == study_ids()
    for s in data["studies"]:
        assert s["verdict"] in VERDICTS, s["id"]
        assert s["claim"] and s["verdict_rule"] and s["evidence"] and s["numbers"] and s["anchors"], s["id"]
        assert s["figures"], f"{s['id']} has no figure"
        assert s["elapsed_s"] >= 0 and s["setup"]
        assert not s["runs"] or set(s["run_precisions"]) <= {"fp32", "bf16"} and s["run_precisions"], s["id"]
    paths = render_report(smoke["out"])
    assert paths.problems == []
    html, md = paths.html.read_text(), paths.markdown.read_text()
    for sid in study_ids():
        assert f"study-{sid}" in html and sid in md
    assert len(list((smoke["out"] / "figures").glob("*.svg"))) >= 9


def test_smoke_catalogue_in_a_browser(smoke, tmp_path):
    from test_report_browser import CHROMIUM, open_page

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make system-deps installs it)")
    page = open_page(smoke["out"] / "report.html", tmp_path)
    (tmp_path / "smoke-report.png").write_bytes(page["screenshot"])
    print(f"screenshot: {tmp_path / 'smoke-report.png'}")
    assert page["errors"] == []
    assert page["ids"] == [f"study-{s}" for s in study_ids()]
    assert page["images"] > 0 and page["decoded"] == page["images"]


def test_running_again_trains_nothing(smoke):
    before = _finished_runs(smoke["store"])
    assert before, "the smoke catalogue trained no run"
    lines: list[str] = []
    reproduce(smoke["out"], scale="smoke", store=smoke["store"], force=True, log=lines.append)
    assert _finished_runs(smoke["store"]) == before  # same runs, none rewritten
    assert any("from the store" in line for line in lines)
    assert not any("ETA" in line or "done in" in line for line in lines)


def test_study_command_writes_one_study(tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["study", "vanishing", "--scale", "smoke", "--out", str(out), "--store", str(tmp_path / "s")]) == 0
    assert [s["id"] for s in _results(out)["studies"]] == ["vanishing"]
    assert (out / "report.html").exists() and capsys.readouterr().out.strip().endswith("report.html")


def test_study_list_and_bad_ids(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reslab", "study", "--list"], capture_output=True, text=True)
    assert proc.returncode == 0 and all(s in proc.stdout for s in study_ids())
    for args in (["study", "nosuch"], ["reproduce", "--only", "lesion", "nosuch"], ["reproduce", "--seeds", "0"]):
        proc = subprocess.run(
            [sys.executable, "-m", "reslab", *args, "--out", str(tmp_path / "x"), "--store", str(tmp_path / "s")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, args
    assert not (tmp_path / "x" / "results.json").exists()


def test_reproduce_resumes_after_sigkill(tmp_path):
    store_dir, out = tmp_path / "store", tmp_path / "report"
    cmd = [sys.executable, "-m", "reslab", "reproduce", "--scale", "smoke", "--workers", "1",
           "--store", str(store_dir), "--out", str(out), "--only", "degradation", "shortcut-variants"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.monotonic() + 240
    finished: dict[str, float] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        if (store_dir / "index.sqlite").exists():
            finished = _finished_runs(RunStore(store_dir))
            if len(finished) >= 3:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the reproduction ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _finished_runs(RunStore(store_dir))
    assert len(finished) < 4 + 7  # interrupted: not every run is done
    lines: list[str] = []
    reproduce(
        out, scale="smoke", only=["degradation", "shortcut-variants"], store=RunStore(store_dir), log=lines.append
    )
    after = _finished_runs(RunStore(store_dir))
    assert {k: after[k] for k in finished} == finished  # runs done before the kill were not retrained
    assert [s["id"] for s in _results(out)["studies"]] == ["degradation", "shortcut-variants"]


def _tiny(seed: int) -> TrainConfig:
    return TrainConfig(
        model="mlp_plain", data="fashion-mnist", model_options={"depth": 2, "width": 8}, seed=seed,
        data_options={"train_size": 64, "val_size": 32, "test_size": 32}, eval_train_size=32,
        recipe=Recipe(steps=3, batch_size=16, schedule="constant", lr=0.05),
    )  # fmt: skip


def test_worker_processes_train_each_run_once(tmp_path, monkeypatch):
    monkeypatch.setattr("reslab.runs.executors.cores", lambda: 3)
    store = RunStore(tmp_path / "store")
    executor = LocalExecutor(workers=2, log=lambda line: None)
    configs = [_tiny(0), _tiny(1), _tiny(0)]
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        executor.prefetch(store, configs[:1])
        assert torch.get_num_threads() == 1  # while the workers train, this process keeps the core they leave
        records = executor.run_all(store, configs, label="tiny")
        assert torch.get_num_threads() == 3  # no run left: the analyses get the whole CPU back
    finally:
        executor.close()
        torch.set_num_threads(threads)
    assert [r.config.seed for r in records] == [0, 1, 0] and records[0].hash == records[2].hash
    assert all(r.done for r in records) and store.index.count() == 2
    again = LocalExecutor(log=lambda line: None).run_all(store, configs)
    assert [r.result for r in again] == [r.result for r in records]


def test_every_study_is_complete_at_every_scale():
    synthetic = {"transformer": "reversal", "gated-rnn": "adding"}  # the papers' tasks need no images
    for study in all_studies():
        assert set(study.settings) == {"smoke", "quick", "full"}, study.id
        assert study.claim.endswith(".") and study.rule and study.anchors and study.sources, study.id
        full = study.runs_for("full", study.seeds_for("full", None))
        expected = synthetic.get(study.id, "fashion-mnist" if study.id in ("highway", "vanishing") else "cifar10")
        assert all(c.data == expected for c in full), study.id  # the papers' setting
        assert all(c.convergence_check for c in full), study.id  # claims about trained nets: converged nets only
    deg = [s for s in all_studies() if s.id == "degradation"][0]
    full = deg.runs_for("full", [0, 1, 2])
    assert {c.model for c in full} >= {"resnet20", "resnet56", "plain20", "plain56", "resnet110"}
    assert all(c.recipe.steps == 64_000 and c.recipe.lr == 0.1 for c in full)


def test_stability_records_each_cells_verdict(tmp_path):
    out = tmp_path / "stab"
    args = ["stability", "--only", "identity", "--scale", "smoke", "--precisions", "fp32", "--seed-sets", "0", "1"]
    assert main([*args, "--out", str(out), "--store", str(tmp_path / "s")]) == 0
    row = json.loads((out / "stability.json").read_text())["studies"]["identity"]
    verdicts = {cell: found["verdict"] for cell, found in row["cells"].items()}
    assert list(verdicts) == ["fp32-seeds0", "fp32-seeds1"] and row["stable"] == (len(set(verdicts.values())) == 1)
    for cell in verdicts:  # each cell's report states the verdict in every cell
        assert _results(out / cell)["studies"][0]["stability"] == verdicts
        assert "cells of reslab stability" in (out / cell / "report.md").read_text()
    assert (out / "stability.md").read_text().count("| identity |") == 1


def test_rerunning_one_study_keeps_the_time_of_the_run_that_computed_the_others(tmp_path):
    store, out = RunStore(tmp_path / "s"), tmp_path / "r"
    quiet = {"store": store, "log": lambda line: None, "scale": "smoke"}
    reproduce(out, only=["identity", "propagation"], executor=LocalExecutor(log=lambda line: None), **quiet)
    first = _results(out)["sessions"]
    assert [s["studies"] for s in first] == [["identity", "propagation"]] and first[0]["elapsed_s"] > 0
    reproduce(out, only=["identity"], executor=LocalExecutor(log=lambda line: None), force=True, **quiet)
    sessions = _results(out)["sessions"]
    assert [s["studies"] for s in sessions] == [["propagation"], ["identity"]]
    assert sessions[0]["elapsed_s"] == first[0]["elapsed_s"] and "aten_cpu_capability" in sessions[1]


@pytest.mark.parametrize("scale", ["smoke", "quick"])
def test_every_planned_run_can_be_built(scale):
    """Each run a study plans builds (on the meta device) with its data: a study whose settings
    cannot train fails before anything trains, not on a worker halfway through the catalogue."""
    datasets: dict = {}
    for study in all_studies():
        _check_buildable(study, scale, study.runs_for(scale, study.seeds_for(scale, None)), datasets)
