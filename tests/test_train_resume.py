"""A run killed with SIGKILL and resumed ends bit-for-bit where an uninterrupted run ends (CPU, --deterministic)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from reslab.cli import build_parser, main
from reslab.commands.train import build_config
from reslab.runs import RunStore
from reslab.train import read_metrics

ARGS = [
    "--model", "resnet20", "--model-opt", "depth=8", "--model-opt", "widths=[4, 8, 8]",
    "--model-opt", "drop_path=0.2",  # draws from the RNG every step, so its state must be restored too
    "--data", "synthetic-images", "--data-opt", "size=8", "--data-opt", "test_size=64",
    "--train-size", "512", "--val-size", "64", "--eval-train-size", "64",
    "--batch-size", "32", "--max-steps", "160", "--crop", "1", "--flip", "--seed", "3",
    "--deterministic", "--checkpoint-every", "8", "--log-every", "4",
]  # fmt: skip


def env(tmp_path):
    # one thread: the same in every process, and quick on a shared machine
    return {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp_path), "RESLAB_HOME": str(tmp_path / "unused")}


def reslab(*args, tmp_path, timeout=120):
    cmd = [sys.executable, "-m", "reslab", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(tmp_path), timeout=timeout)


def test_sigkill_then_resume_is_bit_for_bit_an_uninterrupted_run(tmp_path, monkeypatch):
    # the uninterrupted reference runs in this process (same config, same single thread)
    args = build_parser().parse_args(["train", *ARGS])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole_dir = RunStore(tmp_path / "a").run(build_config(args)).dir
    finally:
        torch.set_num_threads(threads)

    store_b = tmp_path / "b"
    cmd = [sys.executable, "-m", "reslab", "train", *ARGS, "--store", str(store_b)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(tmp_path))
    deadline = time.monotonic() + 90
    while not list(store_b.glob("runs/*/checkpoint.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    (cut_dir,) = store_b.glob("runs/*")
    assert not (cut_dir / "model.pt").exists(), "the run ended before it could be killed"
    killed_at = max(r["step"] for r in read_metrics(cut_dir / "metrics.jsonl"))
    assert killed_at < 160

    resumed = reslab("train", "--resume", str(cut_dir), "--store", str(store_b), tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert Path(resumed.stdout.strip().splitlines()[-1]) == cut_dir
    result = json.loads((cut_dir / "result.json").read_text())
    assert result["status"] == "finished" and result["resumed"] == 1 and result["steps"] == 160

    a = torch.load(whole_dir / "model.pt", weights_only=True)
    b = torch.load(cut_dir / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    reference = json.loads((whole_dir / "result.json").read_text())
    assert all(result[k] == reference[k] for k in ("train_error", "val_error", "test_error", "val_loss"))
    # the log after the resume has every step exactly once, as the uninterrupted one
    cut_steps = [(r["kind"], r["step"]) for r in read_metrics(cut_dir / "metrics.jsonl")]
    assert cut_steps == [(r["kind"], r["step"]) for r in read_metrics(whole_dir / "metrics.jsonl")]
    assert [s for k, s in cut_steps if k == "train"] == list(range(4, 161, 4))


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--lr", "0.5", "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "drop --lr" in err
    assert main(["train", "--resume", str(tmp_path / "nothing-here"), "--store", str(tmp_path / "s")]) == 2
    assert "not a run directory" in capsys.readouterr().err
