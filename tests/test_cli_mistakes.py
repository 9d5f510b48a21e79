"""Every user mistake the CLI can meet: one line on stderr, exit code 2, nothing half-written.

Full-disk and read-only cases use real file systems where this machine allows it (a tiny
tmpfs, a read-only bind mount: as root with ``mount``), else a folder without write
permission (not root) or a write that fails with the same error; each says which it used.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reslab.cli import main
from reslab.errors import StoreError
from reslab.report.sample import sample_results
from reslab.runs import RunStore
from reslab.train import Callback, Recipe, TrainConfig

TINY_ARGS = ["--model", "mlp_plain", "--data", "identity", "--model-opt", "depth=2", "--model-opt", "width=8",
             "--train-size", "64", "--val-size", "16", "--data-opt", "test_size=16", "--data-opt", "dim=4",
             "--batch-size", "16", "--max-steps", "4", "--eval-train-size", "16"]  # fmt: skip
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def mount():
    """``mount(path, *args)`` runs ``mount ARGS PATH`` (True if it worked); all undone after the test."""
    made = []

    def do(path: Path, *args: str) -> bool:
        if not AS_ROOT or shutil.which("mount") is None:
            return False
        path.mkdir(parents=True, exist_ok=True)
        ok = subprocess.run(["mount", *args, str(path)], capture_output=True).returncode == 0
        if ok:
            made.append(path)
        return ok

    yield do
    for path in reversed(made):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def unwritable(tmp_path, mount):
    """A folder nothing can be written in: a read-only tmpfs as root, else one without write permission."""
    path = tmp_path / "readonly"
    if mount(path, "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"):
        yield path
    elif not AS_ROOT:
        path.mkdir()
        path.chmod(0o500)
        yield path
        path.chmod(0o700)
    else:
        pytest.skip("root without a working mount: no folder is unwritable for this process")


def one_line_error(capsys, *args, words=()):
    """Run the CLI with ``args``; assert exit 2 and one stderr line holding ``words``; return it."""
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("reslab: error: "), err
    for w in words:
        assert w in err, err
    return err


def assert_empty(store: Path) -> None:
    """Nothing was left in the store: no run directory, no index row (or no store at all)."""
    if store.exists():
        assert not any((store / "runs").iterdir()) and RunStore(store).index.count() == 0


def tiny(**changes):
    return TrainConfig(
        "mlp_plain", "identity", model_options={"depth": 2, "width": 128},
        data_options={"train_size": 64, "val_size": 16, "test_size": 16, "dim": 4},
        recipe=Recipe(steps=8, batch_size=16), eval_train_size=16, checkpoint_every=2, **changes,
    )  # fmt: skip


# --- where values enter: flags and options --------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(tmp_path, capsys):
    one_line_error(capsys, "train", *TINY_ARGS, "--device", "cuda", "--store", str(tmp_path), words=["no CUDA GPU"])
    assert_empty(tmp_path)


def test_device_cuda_abc(tmp_path, capsys):
    one_line_error(capsys, "train", *TINY_ARGS, "--device", "cuda:abc", "--store", str(tmp_path), words=["cuda:N"])
    assert_empty(tmp_path)


def test_crop_larger_than_the_image(tmp_path, capsys):
    args = ["--model", "resnet20", "--model-opt", "depth=8", "--data", "synthetic-images", "--data-opt", "size=8",
            "--train-size", "64", "--val-size", "16", "--batch-size", "16", "--max-steps", "2", "--crop", "40"]  # fmt: skip
    one_line_error(capsys, "train", *args, "--store", str(tmp_path), words=["--crop 40", "8x8"])
    assert_empty(tmp_path)


def test_num_classes_that_does_not_fit_the_data(tmp_path, capsys):
    args = ["--model", "mlp_plain", "--data", "synthetic-images", "--model-opt", "num_classes=3", "--train-size", "64",
            "--val-size", "16", "--batch-size", "16", "--max-steps", "2", "--eval-train-size", "16"]  # fmt: skip
    one_line_error(capsys, "train", *args, "--store", str(tmp_path), words=["num_classes=3", "10 classes"])
    assert_empty(tmp_path)


def test_a_seed_too_large_for_the_index(tmp_path, capsys):
    one_line_error(capsys, "train", *TINY_ARGS, "--seed", str(2**64), "--store", str(tmp_path), words=["64-bit"])
    assert_empty(tmp_path)


def test_a_data_dir_that_does_not_exist(tmp_path, capsys):
    missing = str(tmp_path / "no-such-folder")
    one_line_error(capsys, "train", *TINY_ARGS, "--data-dir", missing, "--store", str(tmp_path / "s"), words=[missing])
    assert_empty(tmp_path / "s")
    one_line_error(capsys, "data", "ls", "--data-dir", missing, words=[missing])


def test_out_naming_a_file(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    one_line_error(capsys, "train", *TINY_ARGS, "--out", str(tmp_path / "a-file"), "--store", str(tmp_path / "s"),
                   words=["is a file"])  # fmt: skip
    assert_empty(tmp_path / "s")


def test_store_naming_a_file(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    one_line_error(capsys, "train", *TINY_ARGS, "--store", str(tmp_path / "a-file"), words=["is a file"])
    one_line_error(capsys, "runs", "ls", "--store", str(tmp_path / "a-file"), words=["is a file"])
    assert (tmp_path / "a-file").read_text() == "x"


def test_reproduce_out_naming_a_file(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    one_line_error(capsys, "reproduce", "--scale", "smoke", "--only", "degradation", "--out", str(tmp_path / "a-file"),
                   "--store", str(tmp_path / "s"), words=["is a file"])  # fmt: skip


def test_report_on_results_with_fields_of_the_wrong_types(tmp_path, capsys):
    for change in ({"notes": ["a list"]}, {"runs": 3}, {"seeds": "two"}):
        data = sample_results(n=1)
        data["studies"][0].update(change)
        (tmp_path / "results.json").write_text(json.dumps(data))
        one_line_error(capsys, "report", str(tmp_path), words=[f"'{next(iter(change))}' must be"])
    data = sample_results(n=1)
    data["studies"][0]["figures"][0]["title"] = 7
    (tmp_path / "results.json").write_text(json.dumps(data))
    one_line_error(capsys, "report", str(tmp_path), words=["'title' must be a string"])
    assert not (tmp_path / "report.html").exists()


def test_output_into_a_closed_pipe_ends_quietly():
    def piped(reader):
        cmd = f"{sys.executable} -m reslab models 'mlp*' | {reader}; echo status=${{PIPESTATUS[0]}} >&2"
        return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)

    proc = piped("head -1")  # the case (whether the pipe breaks depends on timing)
    assert proc.stdout.startswith("model ") and proc.stdout.count("\n") == 1
    assert proc.stderr.strip() in ("status=0", "status=141"), proc.stderr
    proc = piped("true")  # a reader gone before the first line: the pipe surely breaks
    assert proc.stderr.strip() == "status=141", proc.stderr  # no traceback: SIGPIPE's status, as any Unix tool


# --- where the file system says no ---------------------------------------------------------


def test_out_in_an_unwritable_place(tmp_path, capsys, unwritable):
    one_line_error(capsys, "train", *TINY_ARGS, "--out", str(unwritable / "runs"), "--store", str(tmp_path / "s"),
                   words=[str(unwritable)])  # fmt: skip
    assert_empty(tmp_path / "s")


def test_an_unwritable_reslab_home(tmp_path, capsys, unwritable, monkeypatch):
    monkeypatch.setenv("RESLAB_HOME", str(unwritable / "home"))
    one_line_error(capsys, "train", *TINY_ARGS, words=[str(unwritable / "home"), "RESLAB_HOME"])
    one_line_error(capsys, "runs", "ls", words=["RESLAB_HOME"])


def test_a_disk_that_fills_up_during_a_run(tmp_path, capsys, mount, monkeypatch):
    # a file system that holds one checkpoint of this run but not a second one beside it
    size = (RunStore(tmp_path / "probe").run(tiny()).dir / "checkpoint.pt").stat().st_size
    out = tmp_path / "small"
    real = mount(out, "-t", "tmpfs", "-o", f"size={size * 3 // 2 + 64 * 1024}", "tmpfs")
    if not real:
        fail_second_checkpoint(monkeypatch, errno.ENOSPC)  # no mount here: the write fails as a full disk's does
    args = [*TINY_ARGS, "--model-opt", "width=128", "--max-steps", "8", "--checkpoint-every", "2"]
    err = one_line_error(capsys, "train", *args, "--out", str(out), "--store", str(tmp_path / "s"),
                         words=["no space left", "checkpoint.pt (step 2)", "reslab train --resume"])  # fmt: skip
    (run_dir,) = out.iterdir()
    assert not list(run_dir.glob(".*.tmp")) and RunStore(tmp_path / "s").find()[0].status == "stopped"
    assert f"--resume {run_dir}`" in err
    monkeypatch.undo()
    if real:  # space freed: the run continues from its last good checkpoint
        subprocess.run(["mount", "-o", "remount,size=4m", str(out)], check=True)
    assert main(["train", "--resume", str(run_dir), "--store", str(tmp_path / "s")]) == 0
    assert json.loads((run_dir / "result.json").read_text())["steps"] == 8


class MakeReadOnly(Callback):
    """After ``step`` steps the run directory turns read-only: a read-only bind mount of it
    (root), or no write permission (others)."""

    def __init__(self, step, mount):
        self.step, self.mount = step, mount

    def on_step(self, ctx, metrics):
        if ctx.step == self.step:
            d = ctx.run_dir
            if AS_ROOT:
                assert self.mount(d, "--bind", str(d)) and self.mount(d, "-o", "remount,bind,ro")
            else:
                d.chmod(0o555)


def test_a_run_directory_that_turns_read_only(tmp_path, mount, monkeypatch):
    real = not AS_ROOT or mount(tmp_path / "probe", "-t", "tmpfs", "-o", "size=64k", "tmpfs")
    callbacks = [MakeReadOnly(3, mount)] if real else []
    if not real:
        fail_second_checkpoint(monkeypatch, errno.EROFS)  # root without mount: the write fails as a read-only one's
    store = RunStore(tmp_path / "s")
    with pytest.raises(StoreError) as info:
        store.run(tiny(), callbacks=callbacks)
    message = str(info.value)
    assert "\n" not in message and ("read-only" in message or "permission denied" in message), message
    assert "checkpoint.pt (step 2)" in message and "reslab train --resume" in message
    (record,) = store.find()
    assert record.status == "stopped" and not list(record.dir.glob(".*.tmp"))
    if not AS_ROOT:
        record.dir.chmod(0o755)


def fail_second_checkpoint(monkeypatch, code):
    """Make the second checkpoint write fail with ``code`` (where no real file system can)."""
    from reslab.train import checkpoint

    real, calls = checkpoint.atomic_write, []

    def failing(path, write, *args, **kwargs):
        if Path(path).name == "checkpoint.pt":
            calls.append(path)
            if len(calls) == 2:
                raise OSError(code, os.strerror(code))
        return real(path, write, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", failing)
