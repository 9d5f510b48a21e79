"""``reslab probe``: every probe at smoke size, on a checkpoint and on a stored run, and its one-line errors."""

import argparse
import json

import pytest
import torch
from model_styles import CifarResNet

import reslab
from reslab.cli import main
from reslab.train.checkpoint import save_torch

DATA = ["--data", "synthetic-images", "--data-opt", "train_size=16", "--data-opt", "val_size=0",
        "--data-opt", "test_size=16", "--data-opt", "size=8"]  # fmt: skip
TINY = ["--model", "resnet20", "--model-opt", "depth=8", *DATA, "--samples", "8"]
SMOKE = {
    "lesion": ["draws=1"],
    "paths": ["samples_per_length=1", "batch_size=4"],
    "gradflow": [],
    "propagation": ["branch_scale=0.5"],
    "landscape": ["steps=3", "span=0.5"],
    "shattered": ["pairs=2", "grid=16"],
}


def _probe(name, out, *extra):
    opts = [a for o in SMOKE[name] for a in ("--probe-opt", o)]
    return main(["probe", name, *TINY, *opts, "--out", str(out), *extra])


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_every_probe_writes_results_figures_and_a_page(name, tmp_path, capsys):
    assert _probe(name, tmp_path / name) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(tmp_path / name / "report.html")
    manifest = json.loads((tmp_path / name / "probe.json").read_text())
    assert manifest["probe"] == name and manifest["samples"] == 8
    for result in manifest["results"].values():
        assert (tmp_path / name / f"{result['file']}.npz").exists()
    figures = list((tmp_path / name / "figures").iterdir())
    assert figures and all(f.stat().st_size > 1000 for f in figures)
    page = (tmp_path / name / "report.html").read_text()
    assert "Content-Security-Policy" in page and "data:image/" in page and "http" not in page.split("<body>")[1]
    assert "This figure could not be drawn" not in page


def test_a_rerun_reuses_the_results_and_other_settings_do_not(tmp_path, capsys):
    assert _probe("landscape", tmp_path) == 0
    assert "computed in" in capsys.readouterr().out
    assert _probe("landscape", tmp_path) == 0
    assert "results reused" in capsys.readouterr().out
    assert main(["probe", "landscape", *TINY, "--probe-opt", "steps=2", "--out", str(tmp_path)]) == 0
    assert "computed in" in capsys.readouterr().out
    assert not (tmp_path / ".landscape-rows.npz").exists()  # the finished result holds the grid


def test_a_stored_run_and_foreign_weights(tmp_path, capsys):
    store = tmp_path / "store"
    train = ["train", "--model", "resnet20", "--model-opt", "depth=8", *DATA, "--max-steps", "2",
             "--batch-size", "8", "--store", str(store), "--log-every", "1"]  # fmt: skip
    assert main(train) == 0
    run_dir = capsys.readouterr().out.strip().splitlines()[-1]
    out = tmp_path / "from-run"
    assert main(["probe", "propagation", "--run", run_dir, "--store", str(store), "--out", str(out)]) == 0
    context = json.loads((out / "probe.json").read_text())["context"]
    assert context["model"] == "resnet20" and "synthetic-images test split" in context["data"]
    foreign = CifarResNet(1, "A", (16, 32, 64))  # another codebase's ResNet-8: other names, same order and shapes
    torch.save({"state_dict": foreign.state_dict()}, tmp_path / "foreign.th")
    argv = ["probe", "gradflow", *TINY, "--data-opt", "channels=3", "--weights", str(tmp_path / "foreign.th"),
            "--out", str(tmp_path / "foreign")]  # fmt: skip
    assert main(argv) == 0
    context = json.loads((tmp_path / "foreign" / "probe.json").read_text())["context"]
    assert "matched by order, 37 tensors" in context["weights"]
    _one_line_error(capsys, argv[:-2] + ["--data-opt", "channels=1"], "does not fit")  # a 1-channel net


def _one_line_error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert all(w in err for w in words), err


def test_errors_are_one_line_with_exit_2(tmp_path, capsys):
    _one_line_error(capsys, ["probe", "lesions", *TINY], "unknown probe 'lesions'", "lesion")
    _one_line_error(capsys, ["probe", "lesion", "--model", "resnet20"], "--model needs --data")
    _one_line_error(capsys, ["probe", "lesion", *TINY, "--probe-opt", "steps=3"], "no setting steps", "draws")
    _one_line_error(capsys, ["probe", "lesion", *TINY, "--split", "val"], "no val split")
    _one_line_error(capsys, ["probe", "lesion", "--model", "mlp_residual", "--data", "identity"], "real-valued targets")
    _one_line_error(capsys, ["probe", "lesion", "--run", "nosuchrun", "--store", str(tmp_path)], "no run 'nosuchrun'")
    net = reslab.create_model("resnet20", depth=8, in_channels=1, image_size=8)
    torch.save({"args": argparse.Namespace(lr=0.1), "model": net.state_dict()}, tmp_path / "pickled.pt")
    _one_line_error(capsys, ["probe", "lesion", *TINY, "--weights", str(tmp_path / "pickled.pt")], "--allow-pickle")
    save_torch(tmp_path / "wide.pt", reslab.create_model("resnet20", in_channels=1, image_size=8).state_dict())
    _one_line_error(capsys, ["probe", "lesion", *TINY, "--weights", str(tmp_path / "wide.pt")], "does not fit")
    with pytest.raises(SystemExit) as info:
        main(["probe", "lesion", *DATA])
    assert info.value.code == 2 and "one of the arguments --run --model is required" in capsys.readouterr().err


def test_the_command_lists_every_probe_the_runner_has():
    from reslab.commands.probe import PROBE_NAMES
    from reslab.probes.runner import PROBES

    assert tuple(PROBES) == PROBE_NAMES == tuple(SMOKE)
