"""``reslab sweep``: a grid planned up front, trained through the store, summarised per cell
(table, CSV, a self-contained page with one figure per axis); bad files named by key and line."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from reslab.cli import main
from reslab.runs.store import RunStore
from reslab.sweeps import load_sweep

SWEEP = """\
name: tiny
data: fashion-mnist
data_options: {train_size: 64, val_size: 32, test_size: 32}
recipe: {steps: 3, batch_size: 16, schedule: constant, lr: 0.05}
model_options: {width: 8}
eval_train_size: 32
seeds: 2
axes:
  model: [mlp_plain, mlp_residual]
  depth: {model_options.depth: [1, 2]}
"""


def _write(folder: Path, text: str = SWEEP) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path


def _sweep(tmp_path: Path, *extra: str) -> list[str]:
    return ["sweep", str(_write(tmp_path)), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"),
            "--workers", "1", *extra]  # fmt: skip


def test_the_grid_is_planned_from_named_axes_and_seeds(tmp_path):
    sweep = load_sweep(_write(tmp_path))
    assert [a.name for a in sweep.axes] == ["model", "depth"] and sweep.seeds == [0, 1]
    assert [c.labels for c in sweep.cells] == [
        {"model": m, "depth": d} for m in ("mlp_plain", "mlp_residual") for d in ("1", "2")
    ]
    assert len({c.hash() for c in sweep.configs}) == 8
    assert {(c.model, c.model_options["depth"], c.seed) for c in sweep.configs} == {
        (m, d, s) for m in ("mlp_plain", "mlp_residual") for d in (1, 2) for s in (0, 1)
    }
    assert all(c.recipe.steps == 3 and c.model_options["width"] == 8 for c in sweep.configs)
    assert load_sweep(_write(tmp_path), seeds=3).seeds == [0, 1, 2]


def test_labelled_axis_values_set_several_fields(tmp_path):
    text = SWEEP.replace("  depth: {model_options.depth: [1, 2]}\n", "") + (
        "  schedule:\n    short: {recipe.steps: 2, recipe.lr: 0.1}\n    long: {recipe.steps: 4}\n"
    )
    sweep = load_sweep(_write(tmp_path, text))
    short, long = sweep.cells[0].configs[0].recipe, sweep.cells[1].configs[0].recipe
    assert (short.steps, short.lr, long.steps, long.lr) == (2, 0.1, 4, 0.05)


def test_a_sweep_trains_through_the_store_and_writes_its_summary(tmp_path, capsys):
    assert main(_sweep(tmp_path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sweep tiny: model (2) × depth (2) = 4 cells × 2 seed(s) = 8 runs, 0 already")
    header = next(line for line in out if line.startswith("model"))
    assert header.split() == ["model", "depth", "runs", "train_error", "(%)", "val_error", "(%)", "test_error", "(%)"]
    rows = [line for line in out if line.startswith("mlp_")]
    assert len(rows) == 4 and all(re.search(r"\d+\.\d ± \d+\.\d", row) for row in rows)
    page = tmp_path / "out" / "summary.html"
    assert out[-1] == str(page) and RunStore(tmp_path / "store").index.count() == 8
    with open(tmp_path / "out" / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["model"], r["depth"], r["runs"], r["train_error_n"]) for r in table] == [
        (m, d, "2", "2") for m in ("mlp_plain", "mlp_residual") for d in ("1", "2")
    ]
    data = json.loads((tmp_path / "out" / "sweep.json").read_text())
    cell = data["cells"][0]
    results = [RunStore(tmp_path / "store").get(run).result["train_error"] for run in cell["runs"]]
    assert float(table[0]["train_error_mean"]) == pytest.approx(sum(results) / 2)
    html = page.read_text()
    assert html.count("data:image/svg+xml;base64,") == 2  # one figure per axis, panels for the metrics
    assert "Content-Security-Policy" in html and "<script" not in html
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == ["axis-1.svg", "axis-2.svg"]


def test_a_sweep_run_again_trains_nothing(tmp_path, capsys):
    assert main(_sweep(tmp_path)) == 0
    store = RunStore(tmp_path / "store")
    before = {r.id: (r.dir / "result.json").stat().st_mtime_ns for r in store.find()}
    capsys.readouterr()
    assert main(_sweep(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "8 already in" in out and out.count("from the store") == 8
    assert {r.id: (r.dir / "result.json").stat().st_mtime_ns for r in store.find()} == before


def test_plan_trains_nothing(tmp_path, capsys):
    assert main(_sweep(tmp_path, "--plan", "--seeds", "3")) == 0
    assert "= 12 runs, 0 already" in capsys.readouterr().out
    assert RunStore(tmp_path / "store").index.count() == 0 and not (tmp_path / "out").exists()


BAD = [  # (change to the good file, line, key, words of the message)
    ("[1, 2]", "[1, -2]", 10, "axes.depth.model_options.depth[1]", "depth"),
    ("mlp_residual", "mlp_nope", 9, "axes.model[1]", "unknown model"),
    ("lr: 0.05", "lr: -1", 4, "recipe.lr", "lr must be"),
    ("steps: 3", "stepz: 3", 4, "recipe.stepz", "not a recipe field"),
    ("seeds: 2", "seeds: 0", 7, "seeds", "count >= 1"),
    ("seeds: 2", "seed: 2", 7, "seed", "use seeds: N"),
    ("width: 8}", "width: 8, bogus: 1}", 5, "model_options.bogus", "does not take bogus"),
    ("test_size: 32}", "test_size: 32, train_size: 9}", 3, "data_options.train_size", "given twice"),
    ("[1, 2]", "[1, 1]", 10, "axes.depth.model_options.depth", "must differ"),
    ("  model: [", "  modl: [", 9, "axes.modl", "not a field of a run"),
    ("name: tiny", "name: [tiny", 2, None, "not valid YAML"),
    ("name: tiny", "name: ../tiny", 1, "name", "must be a word"),
    ("train_size: 64", "train_size: 999999", 3, "data_options.train_size", "train_size"),
    ("eval_train_size: 32", "eval_train_size: many", 6, "eval_train_size", "eval_train_size"),
    ("seeds: 2", "seeds: 2\nmetrics: [train_error, accuracy]", 8, "metrics[1]", "unknown metric"),
    ("seeds: 2", "seeds: 2\nresources: {cpus: 0}", 8, "resources.cpus", "CPUs per run"),
]


@pytest.mark.parametrize(("old", "new", "line", "key", "words"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_sweep_file_is_one_line_naming_key_and_line(tmp_path, capsys, old, new, line, key, words):
    assert old in SWEEP
    path = _write(tmp_path, SWEEP.replace(old, new, 1))
    assert main(["sweep", str(path), "--store", str(tmp_path / "store"), "--plan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}, line {line}: " in err and words in err, err
    if key:
        assert f"line {line}: {key}: " in err, err
    assert not (tmp_path / "store" / "runs").exists() or not any((tmp_path / "store" / "runs").iterdir())


def test_the_example_in_the_readme_plans():
    sweep = load_sweep(Path(__file__).parents[1] / "examples" / "depth.yaml")
    assert sweep.name == "depth" and len(sweep.cells) == 4 and len(sweep.configs) == 8


def test_a_sweep_under_torchrun_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(_sweep(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torchrun runs one run across processes" in err
