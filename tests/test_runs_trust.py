"""Trusting the run store: runs keyed by the data they read, stores that can be copied and
moved, an index that heals, "already trained" only for a run that is there and whole."""

import fcntl
import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from reslab.cli import main
from reslab.data import fashion
from reslab.errors import StoreError
from reslab.runs import RunStore
from reslab.train import Callback, Recipe, TrainConfig


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(seed=0, steps=4, **changes):
    """A few steps of a 2-block MLP on 64 synthetic vectors: a run costs milliseconds."""
    return TrainConfig(
        "mlp_plain", "identity", model_options={"depth": 2, "width": 8},
        data_options={"train_size": 64, "val_size": 16, "test_size": 16, "dim": 4},
        recipe=Recipe(steps=steps, batch_size=16), eval_train_size=16, seed=seed, **changes,
    )  # fmt: skip


TINY_ARGS = ["--model", "mlp_plain", "--data", "identity", "--model-opt", "depth=2", "--model-opt", "width=8",
             "--train-size", "64", "--val-size", "16", "--data-opt", "test_size=16", "--data-opt", "dim=4",
             "--batch-size", "16", "--max-steps", "4", "--eval-train-size", "16"]  # fmt: skip


def cli(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


# --- the data a run read is part of its identity -------------------------------------------


def fashion_tiny(data_dir=None, **options):
    return TrainConfig(
        "mlp_residual", "fashion-mnist", model_options={"depth": 2, "width": 16},
        data_options={"train_size": 64, "val_size": 16, "test_size": 16, "image_size": 14, **options},
        recipe=Recipe(steps=2, batch_size=16), eval_train_size=16, data_dir=data_dir,
    )  # fmt: skip


def doctored_copy(folder: Path) -> Path:
    """The official Fashion-MNIST with every training label set to 0 (images linked, not copied)."""
    official = fashion.locate()
    folder.mkdir()
    for name in fashion.FILES:
        source = next(p for p in (official / f"{name}.gz", official / name) if p.is_file())
        (folder / source.name).symlink_to(source)
    labels = folder / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()) if labels.exists() else b"")
    labels.unlink()
    raw[8:] = bytes(len(raw) - 8)
    (folder / "train-labels-idx1-ubyte").write_bytes(bytes(raw))
    return folder


@pytest.mark.skipif(fashion.locate() is None, reason="Fashion-MNIST is not installed (reslab data fetch fashion-mnist)")
def test_doctored_data_read_with_verify_false_is_another_run_in_either_order(tmp_path, capsys):
    doctored = fashion_tiny(str(doctored_copy(tmp_path / "doctored")), verify=False)
    official, unverified_official = fashion_tiny(), fashion_tiny(verify=False)
    assert doctored.hash() != official.hash()
    assert unverified_official.hash() == official.hash()  # the same files: verify only says how to read them
    for order in ([official, doctored], [doctored, official]):
        store = RunStore(tmp_path / f"store-{order[0] is official}")
        first, second = (store.run(c) for c in order)
        assert first.dir != second.dir and store.index.count() == 2
        assert second.result["resumed"] == 0  # trained, not handed the other run
    ids = {r.config.data_options.get("verify", True): r.result["data"]["identity"] for r in store.find()}
    assert ids[True] == fashion.OFFICIAL_IDENTITY != ids[False]
    record = store.lookup(doctored)
    recorded = yaml.safe_load((record.dir / "config.yaml").read_text())
    assert recorded["data_identity"] == ids[False] and recorded["hash"] == record.hash
    rc, out, _ = cli(capsys, "runs", "show", record.id, "--store", str(store.root))
    assert rc == 0 and f"data:    {ids[False]}" in out
    rc, out, _ = cli(capsys, "runs", "show", store.lookup(official).id, "--store", str(store.root))
    assert f"data:    {fashion.OFFICIAL_IDENTITY}  (the official files)" in out


def test_cifar_identity_is_its_members_digest_wherever_they_are(tmp_path):
    from test_data_cifar import cifar_files, write_tar

    from reslab.data import data_identity

    for d in "abc":
        (tmp_path / d).mkdir()
    write_tar(tmp_path / "a" / "cifar-10-python.tar.gz", cifar_files("cifar10", seed=0))
    for name, raw in cifar_files("cifar10", seed=0).items():  # the same members, extracted
        (tmp_path / "b" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "b" / name).write_bytes(raw)
    write_tar(tmp_path / "c" / "cifar-10-python.tar.gz", cifar_files("cifar10", seed=1))
    a, b, c = (data_identity("cifar10", tmp_path / d) for d in "abc")
    assert a == b != c and a.startswith("sha256:")
    cfg = TrainConfig("resnet20", "cifar10", data_dir=str(tmp_path / "a"))
    assert (
        cfg.hash()
        == cfg.replace(data_dir=str(tmp_path / "b")).hash()
        != cfg.replace(data_dir=str(tmp_path / "c")).hash()
    )


# --- a store is self-contained: copy it, move it, delete only its own -----------------------


def test_a_store_copied_with_cp_a_and_moved_works_lists_the_same_runs_and_deletes_only_its_own(tmp_path, capsys):
    original = RunStore(tmp_path / "a")
    runs = [original.run(tiny(seed=s)) for s in range(2)]
    external = original.run(tiny(seed=9), out=tmp_path / "elsewhere")
    subprocess.run(["cp", "-a", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    (tmp_path / "b").rename(tmp_path / "moved")  # and moved on from where it was copied
    copy = RunStore(tmp_path / "moved")
    assert sorted(r.id for r in copy.find()) == sorted(r.id for r in original.find())
    assert all(r.done and r.dir.parent == tmp_path / "moved" / "runs" for r in copy.find() if not r.external)
    assert copy.run(tiny(seed=0)).dir == tmp_path / "moved" / "runs" / runs[0].id  # found, not retrained
    # the original's run 0 is "training": its locks are held, yet the copy deletes its own run 0
    with original._lock(runs[0].hash), open(runs[0].dir / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        rc, out, _ = cli(capsys, "runs", "rm", runs[0].id, "--store", str(tmp_path / "moved"))
        assert rc == 0 and str(tmp_path / "moved") in out
    assert not (tmp_path / "moved" / "runs" / runs[0].id).exists() and runs[0].dir.is_dir()
    assert original.lookup(tiny(seed=0)).done
    # a run kept outside both stores is only forgotten by rm, never deleted
    rc, out, _ = cli(capsys, "runs", "rm", external.id, "--store", str(tmp_path / "moved"))
    assert rc == 0 and "outside the store" in out and external.dir.is_dir() and original.lookup(tiny(seed=9)).done


def test_resuming_a_copied_run_directory_does_not_orphan_the_original(tmp_path, capsys):
    store = RunStore(tmp_path / "store")
    record = store.run(tiny())
    shutil.copytree(record.dir, tmp_path / "copy" / record.id)
    rc, _, err = cli(capsys, "train", "--resume", str(tmp_path / "copy" / record.id), "--store", str(store.root))
    assert rc == 2 and err.count("\n") == 1 and f"keeps that run at {record.dir}" in err
    assert store.lookup(tiny()).dir == record.dir and store.lookup(tiny()).done


def test_a_run_directory_being_trained_by_another_store_is_neither_deleted_nor_trained(tmp_path):
    store = RunStore(tmp_path / "store")
    record = store.run(tiny(steps=2))
    (record.dir / "result.json").unlink()  # unfinished again
    with open(record.dir / ".lock", "a") as f:  # another process (of another store) writes it
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(StoreError, match="being trained by another process"):
            store.rm(record.id)
        with pytest.raises(StoreError, match="being trained by another process"):
            store.run(tiny(steps=2))
    assert record.dir.is_dir()


def test_runs_mv_moves_a_run_out_of_the_store_and_back(tmp_path):
    store = RunStore(tmp_path / "store")
    record = store.run(tiny())
    moved = store.move(record.id, tmp_path / "kept")
    assert moved.external and moved.dir == tmp_path / "kept" / record.id and moved.done and not record.dir.exists()
    assert store.run(tiny()).dir == moved.dir
    back = store.move(record.id, store.runs_dir)
    assert not back.external and back.dir == record.dir and back.done


class StopAt(Callback):
    """Asks the loop to stop (with a checkpoint) after ``step`` steps, like a Ctrl-C."""

    def __init__(self, step):
        self.step = step

    def on_step(self, ctx, metrics):
        if ctx.step == self.step:
            ctx.extra["stop"] = True


# --- an index that heals ---------------------------------------------------------------------


def test_a_deleted_index_is_rebuilt_from_the_run_directories(tmp_path, capsys):
    store = RunStore(tmp_path / "store")
    done = [store.run(tiny(seed=s)) for s in range(3)]
    stopped = store.run(tiny(seed=7, steps=8, checkpoint_every=2), callbacks=[StopAt(3)])
    before = {r.hash: (r.id, r.status, r.result) for r in store.find()}
    for path in (tmp_path / "store").glob("index.sqlite*"):
        path.unlink()
    rc, out, err = cli(capsys, "runs", "ls", "--store", str(tmp_path / "store"))
    assert rc == 0 and "rebuilt it from 4 run directories" in err and "4 run(s)" in out
    healed = RunStore(tmp_path / "store")
    assert {r.hash: (r.id, r.status, r.result) for r in healed.find()} == before
    assert stopped.status == "stopped" and healed.run(tiny(seed=0)).dir == done[0].dir


def test_a_damaged_index_says_so_and_reindex_repairs_it_keeping_external_runs(tmp_path, capsys):
    store = RunStore(tmp_path / "store")
    inside, outside = store.run(tiny()), store.run(tiny(seed=1), out=tmp_path / "elsewhere")
    rc, out, _ = cli(capsys, "runs", "reindex", "--store", str(store.root))  # a healthy index: externals kept
    assert rc == 0 and "indexed 2 run(s)" in out
    store.index.close()
    for path in (tmp_path / "store").glob("index.sqlite*"):
        path.unlink()
    (tmp_path / "store" / "index.sqlite").write_bytes(b"this is not a database" * 100)
    rc, _, err = cli(capsys, "runs", "ls", "--store", str(store.root))
    assert rc == 2 and err.count("\n") == 1 and "is damaged" in err and "reslab runs reindex" in err
    rc, out, _ = cli(capsys, "runs", "reindex", "--store", str(store.root))
    assert rc == 0 and "indexed 1 run(s)" in out and "index.sqlite.damaged" in out
    healed = RunStore(store.root)
    assert [r.id for r in healed.find()] == [inside.id] and healed.lookup(tiny()).done
    assert (tmp_path / "store" / "index.sqlite.damaged").exists() and outside.dir.is_dir()


def test_a_finished_run_whose_directory_was_deleted_is_trained_again_saying_why(tmp_path, capsys):
    store = str(tmp_path / "store")
    rc, out, _ = cli(capsys, "train", *TINY_ARGS, "--store", store)
    run_dir = Path(out.strip().splitlines()[-1])
    shutil.rmtree(run_dir)
    assert RunStore(store).lookup(tiny()).status == "missing"
    rc, out, err = cli(capsys, "train", *TINY_ARGS, "--store", store)
    assert rc == 0 and "already trained" not in out and "is gone; training it again" in err
    assert Path(out.strip().splitlines()[-1]) == run_dir and (run_dir / "result.json").is_file()


def test_a_finished_run_whose_result_is_truncated_is_trained_again(tmp_path, capsys):
    store = RunStore(tmp_path / "store")
    record = store.run(tiny())
    text = (record.dir / "result.json").read_text()
    (record.dir / "result.json").write_text(text[: len(text) // 2])
    assert store.lookup(tiny()).status == "damaged" and "torn" in store.lookup(tiny()).problem
    rc, out, err = cli(capsys, "train", *TINY_ARGS, "--store", str(store.root))
    assert rc == 0 and "already trained" not in out and "training it again" in err
    again = store.lookup(tiny())
    assert again.done and again.result["test_error"] == record.result["test_error"]


def test_out_for_a_run_stored_elsewhere_says_where_and_runs_mv_brings_it(tmp_path, capsys):
    store = str(tmp_path / "store")
    rc, out, _ = cli(capsys, "train", *TINY_ARGS, "--store", store)
    stored = Path(out.strip().splitlines()[-1])
    rc, out, err = cli(capsys, "train", *TINY_ARGS, "--store", store, "--out", str(tmp_path / "wanted"))
    assert rc == 0 and out.startswith("already trained") and Path(out.strip().splitlines()[-1]) == stored
    assert f"at {stored}, not under {tmp_path / 'wanted'}" in err and f"reslab runs mv {stored.name}" in err
    rc, out, _ = cli(capsys, "runs", "mv", stored.name, str(tmp_path / "wanted"), "--store", store)
    assert rc == 0 and not stored.exists()
    rc, out, err = cli(capsys, "train", *TINY_ARGS, "--store", store, "--out", str(tmp_path / "wanted"))
    assert rc == 0 and err == "" and Path(out.strip().splitlines()[-1]) == tmp_path / "wanted" / stored.name


def test_a_killed_run_shows_as_interrupted_once_its_lock_is_free(tmp_path, capsys):
    store = RunStore(tmp_path / "store")
    record = store.run(tiny(steps=6, checkpoint_every=2), callbacks=[StopAt(3)])
    store.index.upsert(record.hash, status="running")  # as a SIGKILLed trainer leaves it
    with store._lock(record.hash):  # while a process holds the lock, it is running
        assert store.lookup(tiny(steps=6, checkpoint_every=2)).status == "running"
    rc, out, _ = cli(capsys, "runs", "ls", "--store", str(store.root))
    assert "interrupted" in out
    rc, out, _ = cli(capsys, "runs", "ls", "status=interrupted", "--store", str(store.root))
    assert record.id in out
    assert store.run(tiny(steps=6, checkpoint_every=2)).status == "finished"


def test_results_record_the_data_identity_of_generated_data(tmp_path):
    record = RunStore(tmp_path).run(tiny())
    assert record.result["data"]["identity"] == "generated"
    assert json.loads((record.dir / "result.json").read_text())["data"]["identity"] == "generated"


def test_an_index_from_before_relative_paths_works_in_place_and_its_copy_after_reindex(tmp_path, capsys):
    store = RunStore(tmp_path / "a")
    records = [store.run(tiny(seed=s)) for s in range(2)]
    for r in records:  # as older versions wrote it: absolute paths
        store.index.upsert(r.hash, dir=str(r.dir.resolve()))
    assert not store.get(records[0].id).external
    subprocess.run(["cp", "-a", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    copy = RunStore(tmp_path / "b")
    assert copy.get(records[1].id).external  # it names the original's directory: never deleted from here
    rc, out, _ = cli(capsys, "runs", "reindex", "--store", str(tmp_path / "b"))
    assert rc == 0 and all(r.dir.parent == tmp_path / "b" / "runs" and not r.external for r in copy.find())
    store.rm(records[0].id)
    assert not records[0].dir.exists() and (tmp_path / "b" / "runs" / records[0].id).is_dir()
