"""Recipes, configs and the training loop: files, honest numbers, divergence, callbacks, resume."""

import json
import sys

import pytest
import torch

from reslab.data import load_dataset
from reslab.errors import ConfigError, UnknownModelError
from reslab.train import Callback, Recipe, TrainConfig, evaluate, get_recipe, hardware, lr_at, read_metrics, train
from reslab.train import loop as train_loop
from reslab.train import setup as train_setup
from reslab.train.task import Task


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets run faster on one thread, and far faster when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**changes):
    """A 3-block CNN on 8x8 synthetic images: a real run in well under a second."""
    base = dict(
        model="resnet20",
        data="synthetic-images",
        model_options={"depth": 8, "widths": [4, 8, 8]},
        data_options={"train_size": 256, "val_size": 64, "test_size": 64, "size": 8},
        recipe=Recipe(steps=12, batch_size=32, crop=1, flip=True),
        eval_train_size=64,
        log_every=4,
    )
    base.update(changes)
    return TrainConfig(**base)


# --- recipes and configs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": -0.1},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"epochs": 2, "steps": 10},
        {"optimizer": "adam"},
        {"schedule": "poly"},
        {"milestones": (0.8, 0.5)},
        {"batch_size": 0},
        {"optimizer": "adamw", "nesterov": True},
        {"precision": "fp16"},
        {"warmup": "linear", "warmup_steps": 0},
        {"weight_decay": -1e-4},
    ],
)
def test_invalid_recipe_values_are_config_errors(bad):
    with pytest.raises(ConfigError, match="invalid recipe"):
        Recipe(**bad)


def test_he2015_preset_and_overrides():
    r = get_recipe("he2015_cifar")
    assert (r.optimizer, r.lr, r.momentum, r.weight_decay, r.batch_size, r.steps) == ("sgd", 0.1, 0.9, 1e-4, 128, 64000)
    assert r.schedule == "step" and [round(m * r.steps) for m in r.milestones] == [32000, 48000] and r.gamma == 0.1
    assert (r.crop, r.flip) == (4, True)
    short = get_recipe("he2015_cifar", epochs=2)
    assert short.epochs == 2 and short.steps is None  # setting one length clears the other
    assert get_recipe("he2015_cifar_warmup").warmup == "he2015"
    with pytest.raises(ConfigError, match="unknown recipe"):
        get_recipe("resnet-magic")


def test_learning_rate_schedules():
    step = Recipe(schedule="step", lr=0.1, milestones=(0.5, 0.75), gamma=0.1)
    assert [round(lr_at(step, s, 100, False), 10) for s in (0, 49, 50, 74, 75, 99)] == [
        0.1,
        0.1,
        0.01,
        0.01,
        0.001,
        0.001,
    ]
    cos = Recipe(schedule="cosine", lr=0.2, final_lr=0.0)
    assert lr_at(cos, 0, 100, False) == pytest.approx(0.2) and lr_at(cos, 50, 100, False) == pytest.approx(0.1)
    assert lr_at(cos, 100, 100, False) == pytest.approx(0.0, abs=1e-12)
    warm = Recipe(schedule="constant", lr=0.4, warmup="linear", warmup_steps=4)
    assert [lr_at(warm, s, 100, False) for s in range(5)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4])
    he = Recipe(schedule="constant", lr=0.1, warmup="he2015", warmup_lr=0.01)
    assert lr_at(he, 10, 100, True) == 0.01 and lr_at(he, 10, 100, False) == 0.1
    wsd = Recipe(schedule="wsd", lr=0.1, decay_frac=0.2)
    assert [lr_at(wsd, s, 100, False) for s in (0, 80, 90, 99)] == pytest.approx([0.1, 0.1, 0.05, 0.005])
    # a wsd run of half the length follows the same rates until its own decay starts
    assert all(lr_at(wsd, s, 100, False) == lr_at(wsd, s, 50, False) for s in range(41))
    assert lr_at(wsd, 41, 50, False) < lr_at(wsd, 41, 100, False)


def test_config_hash_covers_what_changes_a_result_only():
    a = tiny()
    assert a.hash() == tiny().hash() and len(a.hash()) == 64
    assert a.hash() != tiny(seed=1).hash() != tiny(recipe=Recipe(steps=13, batch_size=32)).hash()
    assert a.hash() != tiny(tag="with-probe").hash()
    same = tiny(log_every=1, checkpoint_every=3, device="cpu", data_dir="/elsewhere")
    assert same.hash() == a.hash()
    assert tiny(data_options={**a.data_options, "verify": False}).hash() == a.hash()
    back = TrainConfig.from_yaml(a.to_yaml())
    assert back == a and back.hash() == a.hash()
    assert a.run_id().startswith("resnet20-synthetic-images-s0-")


# --- one run, end to end -------------------------------------------------------------------


def test_a_run_writes_its_files_and_reports_numbers_that_reproduce(tmp_path):
    cfg = tiny()
    result = train(cfg, tmp_path)
    assert result["status"] == "finished" and result["steps"] == 12 and result["diverged_step"] is None
    assert {p.name for p in tmp_path.iterdir()} >= {
        "config.yaml",
        "metrics.jsonl",
        "checkpoint.pt",
        "model.pt",
        "result.json",
    }
    assert json.loads((tmp_path / "result.json").read_text()) == result
    lines = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in lines if r["kind"] == "train"] == [4, 8, 12]
    assert [r["step"] for r in lines if r["kind"] == "eval"] == [8, 12]  # 8 steps an epoch, and the end
    first = lines[0]
    assert {"loss", "train_error", "lr", "grad_norm", "img_per_s", "epoch"} <= set(first) and first["grad_norm"] > 0
    # the result's numbers are those of model.pt, re-evaluated from the files alone
    ds = load_dataset(cfg.data, **cfg.data_options)
    model = train_setup.build_model(cfg, ds)[0]
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    _, test_error = evaluate(
        model,
        ds.test,
        ds,
        Task(ds.task),
        device=torch.device("cpu"),
        precision=result["precision"],
        channels_last=False,
    )
    assert test_error == pytest.approx(result["test_error"], abs=1e-9)
    assert result["train_eval_size"] == 64 and 0 <= result["train_error"] <= 1 and result["img_per_s"] > 0
    assert result["model"]["options"]["in_channels"] == 1 and result["model"]["options"]["image_size"] == 8
    # asking again returns the stored result without training
    assert train(cfg, tmp_path) == result


def diverging_config(log_every: int) -> TrainConfig:
    """A unit-initialized deep MLP at lr 10: its loss turns non-finite within a few steps."""
    return TrainConfig(
        "mlp_plain",
        "identity",
        model_options={"depth": 6, "width": 16, "init": "unit"},
        data_options={"train_size": 64, "val_size": 16, "test_size": 16, "dim": 4},
        recipe=Recipe(steps=50, batch_size=16, lr=10.0, schedule="constant", weight_decay=0.0),
        eval_train_size=16,
        log_every=log_every,
    )


def test_a_non_finite_loss_ends_the_run_as_diverged(tmp_path):
    cfg = diverging_config(log_every=1)
    result = train(cfg, tmp_path)  # must not raise
    assert result["status"] == "diverged" and 1 <= result["diverged_step"] <= 50
    assert result["steps"] == result["diverged_step"] - 1
    last = read_metrics(tmp_path / "metrics.jsonl")
    assert any(r["kind"] == "diverged" and r["step"] == result["diverged_step"] for r in last)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


def test_token_and_regression_tasks(tmp_path):
    tokens = TrainConfig(
        "transformer_preln",
        "reversal",
        model_options={"depth": 1, "d_model": 16, "d_ff": 32, "heads": 2},
        data_options={"train_size": 256, "val_size": 32, "test_size": 32, "seq_len": 6, "vocab": 5},
        recipe=get_recipe("transformer", steps=8, batch_size=32, warmup_steps=2),
        eval_train_size=32,
    )
    r = train(tokens, tmp_path / "tok")
    assert r["status"] == "finished" and r["error_metric"] == "error" and 0 <= r["test_error"] <= 1
    adding = TrainConfig(
        "gru",
        "adding",
        model_options={"hidden_size": 8},
        data_options={"train_size": 64, "val_size": 16, "test_size": 16, "seq_len": 5},
        recipe=Recipe(steps=4, batch_size=16, optimizer="adamw", lr=1e-2, momentum=0.0),
        eval_train_size=64,
    )
    r = train(adding, tmp_path / "add")
    assert r["error_metric"] == "mse" and r["train_error"] == pytest.approx(r["train_loss"])


class Recorder(Callback):
    every = 5

    def __init__(self, stop_at=None):
        self.calls = {"start": 0, "backward": [], "step": 0, "epoch": [], "end": 0}
        self.stop_at = stop_at

    def on_start(self, ctx):
        self.calls["start"] += 1

    def on_backward(self, ctx, loss):
        assert all(p.grad is not None for p in ctx.model.parameters())
        self.calls["backward"].append(ctx.step)

    def on_step(self, ctx, metrics):
        self.calls["step"] += 1
        if ctx.step == self.stop_at:
            ctx.extra["stop"] = True

    def on_epoch_end(self, ctx, metrics):
        self.calls["epoch"].append(ctx.step)

    def on_end(self, ctx, result):
        self.calls["end"] += 1

    def state_dict(self):
        return {"steps_seen": self.calls["step"]}

    def load_state_dict(self, state):
        self.calls["step"] = state["steps_seen"]


def test_callback_hooks_run_when_they_should(tmp_path):
    rec = Recorder()
    train(tiny(), tmp_path, callbacks=[rec])
    assert rec.calls == {"start": 1, "backward": [0, 5, 10], "step": 12, "epoch": [8, 12], "end": 1}


def test_stop_then_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = tiny(
        deterministic=True,
        model_options={"depth": 8, "widths": [4, 8, 8], "drop_path": 0.3},  # draws random numbers every step
        recipe=Recipe(steps=20, batch_size=32, crop=1, flip=True),
        log_every=3,
    )
    whole = train(cfg, tmp_path / "whole")
    first = Recorder(stop_at=7)
    stopped = train(cfg, tmp_path / "cut", callbacks=[first])
    assert stopped["status"] == "stopped" and stopped["steps"] == 7
    second = Recorder()
    resumed = train(cfg, tmp_path / "cut", callbacks=[second])
    assert resumed["status"] == "finished" and resumed["resumed"] == 1 and second.calls["step"] == 20
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for key in ("train_error", "val_error", "test_error", "train_loss"):
        assert resumed[key] == whole[key]
    steps = [(r["kind"], r["step"]) for r in read_metrics(tmp_path / "cut" / "metrics.jsonl")]
    assert steps == [(r["kind"], r["step"]) for r in read_metrics(tmp_path / "whole" / "metrics.jsonl")]
    assert len(steps) == len(set(steps))


def test_he2015_warmup_holds_the_small_rate_until_the_error_drops(tmp_path):
    cfg = tiny(
        recipe=Recipe(steps=40, batch_size=32, lr=0.2, schedule="constant", warmup="he2015", warmup_lr=0.01,
                      warmup_error=0.5, warmup_window=3),
        log_every=1,
    )  # fmt: skip
    result = train(cfg, tmp_path)
    end = result["warmup_end_step"]
    assert end is not None and 3 <= end < 40
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"}
    errors = [r["train_error"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert all(lrs[s] == 0.01 for s in range(1, end + 1)) and all(lrs[s] == 0.2 for s in range(end + 1, 41))
    assert sum(errors[end - 3 : end]) / 3 < 0.5 <= sum(errors[end - 4 : end - 1]) / 3


def test_precision_auto_uses_bf16_only_where_the_hardware_has_it(tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert hardware.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    assert hardware.resolve_precision("auto", cpu) == "fp32" and hardware.resolve_precision("bf16", cpu) == "bf16"
    result = train(tiny(recipe=Recipe(steps=2, batch_size=32, precision="bf16")), tmp_path)
    assert result["precision"] == "bf16" and result["status"] == "finished"


def test_tensorboard_missing_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="pip install 'reslab\\[tensorboard\\]'"):
        train(tiny(), tmp_path / "run", tensorboard=True)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_tensorboard_events_are_written(tmp_path):
    pytest.importorskip("tensorboard")
    train(tiny(), tmp_path, tensorboard=True)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"model": "resnet21"}, UnknownModelError),
        ({"model_options": {"depth": 9}}, ConfigError),
        ({"model_options": {"no_such_option": 1}}, ConfigError),
        ({"recipe": Recipe(steps=2, batch_size=1000)}, ConfigError),
        ({"data": "reversal", "model": "transformer_preln", "recipe": Recipe(steps=2, crop=2)}, ConfigError),
        ({"data": "identity", "model": "mlp_plain", "recipe": Recipe(steps=2, warmup="he2015")}, ConfigError),
    ],
)
def test_configs_that_cannot_work_fail_before_training(tmp_path, changes, error):
    cfg = tiny(**changes)
    if cfg.data != "synthetic-images":
        cfg = cfg.replace(data_options={"train_size": 64, "val_size": 8, "test_size": 8})
    with pytest.raises(error):
        train(cfg, tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "result.json").exists()


def test_mlp_gets_its_input_shape_from_the_data(tmp_path):
    cfg = tiny(model="mlp_plain", model_options={"depth": 2, "width": 8}, recipe=Recipe(steps=2, batch_size=32))
    result = train(cfg, tmp_path)
    assert result["model"]["options"]["input_shape"] == [1, 8, 8] and result["params"] == 8 * 64 + 8 + 2 * 72 + 90


def test_deferred_sync_as_on_a_gpu_gives_the_same_log_and_divergence_step(tmp_path, monkeypatch):
    """On a GPU losses are summed on the device and read at log steps; on a CPU every step.
    Both must log the same numbers and find the same divergence step."""
    cfg = tiny(deterministic=True, log_every=3)
    monkeypatch.setattr(train_loop, "SYNC_EACH_STEP", True)
    each = train(cfg, tmp_path / "each")
    monkeypatch.setattr(train_loop, "SYNC_EACH_STEP", False)
    deferred = train(cfg, tmp_path / "deferred")
    strip = [
        {k: v for k, v in r.items() if k not in ("img_per_s", "time")}
        for r in read_metrics(tmp_path / "each" / "metrics.jsonl")
    ]
    assert strip == [
        {k: v for k, v in r.items() if k not in ("img_per_s", "time")}
        for r in read_metrics(tmp_path / "deferred" / "metrics.jsonl")
    ]
    assert each["test_error"] == deferred["test_error"]
    bad = diverging_config(log_every=7)
    monkeypatch.setattr(train_loop, "SYNC_EACH_STEP", True)
    a = train(bad, tmp_path / "bad-each")
    monkeypatch.setattr(train_loop, "SYNC_EACH_STEP", False)
    b = train(bad, tmp_path / "bad-deferred")
    assert a["status"] == b["status"] == "diverged" and a["diverged_step"] == b["diverged_step"]
    assert a["steps"] == b["steps"] == a["diverged_step"] - 1


# --- the convergence check ----------------------------------------------------------------


def _weights(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)


@pytest.mark.parametrize("schedule", ["wsd", "cosine", "constant"])
def test_the_shorter_schedule_branch_equals_a_separate_run_and_leaves_the_run_unchanged(tmp_path, schedule):
    recipe = Recipe(steps=20, batch_size=32, crop=1, flip=True, schedule=schedule, precision="fp32")
    checked = train(tiny(recipe=recipe, convergence_check=True, deterministic=True), tmp_path / "checked")
    plain = train(tiny(recipe=recipe, deterministic=True), tmp_path / "plain")
    half = train(tiny(recipe=recipe.replace(steps=10), deterministic=True), tmp_path / "half")
    branch = checked["half_schedule"]
    assert branch["steps"] == 10 and branch["status"] == "finished"
    # the branch is the separate run of half the length, bit for bit
    assert branch["train_error"] == half["train_error"] and branch["train_loss"] == half["train_loss"]
    assert branch["val_loss"] == half["val_loss"]
    # and the run itself went on as if it had not branched
    assert checked["train_loss"] == plain["train_loss"] and checked["test_loss"] == plain["test_loss"]
    a, b = _weights(tmp_path / "checked"), _weights(tmp_path / "plain")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a wsd schedule shares all but the shorter run's decay (its last fifth); a constant one all of it
    expected_start = {"wsd": 9, "cosine": 1, "constant": 10}[schedule]
    assert branch["branched_at"] == expected_start
    assert plain["half_schedule"] is None


def test_the_shorter_schedule_survives_a_resume(tmp_path):
    recipe = Recipe(steps=20, batch_size=32, schedule="wsd", precision="fp32")
    straight = train(tiny(recipe=recipe, convergence_check=True, deterministic=True), tmp_path / "straight")
    cfg = tiny(recipe=recipe, convergence_check=True, deterministic=True, checkpoint_every=12)

    class StopAt(Callback):
        def on_step(self, training, metrics):
            if metrics["step"] == 12:
                training.extra["stop"] = True

    stopped = train(cfg, tmp_path / "resumed", callbacks=[StopAt()])
    assert stopped["status"] == "stopped"
    resumed = train(cfg, tmp_path / "resumed")
    assert resumed["half_schedule"] == straight["half_schedule"]
    assert resumed["train_loss"] == straight["train_loss"]


def test_the_convergence_check_keeps_the_hashes_of_runs_stored_before_it():
    assert "convergence_check" not in tiny().hashed_fields()
    assert tiny().hash() != tiny(convergence_check=True).hash()
    assert "decay_frac" not in tiny().hashed_fields()["recipe"]
