"""The measuring tools of ``reslab bench`` (never its speed targets: those are not tested)."""

import json

import pytest
import torch
from torch import nn

from reslab.benchmark import BenchContext, Measurement, PeakMeter, alternate, count_flops
from reslab.cli import main
from reslab.commands.bench import _lines
from reslab.data.base import Split
from reslab.train.hardware import compile_mode
from reslab.train.reference import PerSampleAugmented, ReferencePipeline


def test_alternate_takes_turns_and_pairs_each_round():
    calls = []
    values = iter([10.0, 1.0, 2.0, 20.0, 30.0, 3.0])  # round 1: a, b; round 2: b, a; round 3: a, b

    def make(name):
        def fn():
            calls.append(name)
            return next(values)

        return fn

    paired = alternate(make("a"), make("b"), rounds=3, warmup=0)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert paired.a == [10.0, 20.0, 30.0] and paired.b == [1.0, 2.0, 3.0]
    assert paired.ratio == 10.0 and paired.median_a == 20.0


def test_peak_is_the_median_of_its_samples_and_names_the_best_precision():
    peak = PeakMeter(samples={"fp32": [1e11, 3e11, 2e11], "bf16": [5e11, 4e11, 6e11]})
    assert peak.peak("fp32") == 2e11 and peak.best_precision() == "bf16"
    assert "fp32 200 GFLOP/s" in peak.describe()


def test_flops_are_counted_from_the_model():
    layer = nn.Linear(16, 8, bias=False)
    assert count_flops(lambda: layer(torch.zeros(4, 16))) == 2 * 4 * 16 * 8


def test_flops_are_counted_under_inference_mode_and_inside_autograd_grad():
    conv, x = nn.Conv2d(3, 8, 3), torch.randn(2, 3, 8, 8, requires_grad=True)
    forward = 2 * 2 * 8 * 3 * 9 * 6 * 6

    def inference():
        with torch.inference_mode():
            conv(x)

    assert count_flops(inference) == forward
    assert count_flops(lambda: torch.autograd.grad(conv(x).sum(), x)) == 2 * forward  # forward, input gradient


def test_each_line_shows_value_reference_ratio_and_target():
    m = Measurement("train: x", 300.0, "img/s", ">= 3x", True, "detail", "usual pipeline 100 img/s", 3.0)
    line, detail = _lines([m])
    assert line.startswith("ok   train: x") and "300 img/s  vs usual pipeline 100 img/s = 3x  target >= 3x" in line
    assert detail.strip() == "detail"


def test_per_sample_augmentation_keeps_the_shape_and_normalizes():
    x = torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)
    data = PerSampleAugmented(Split(x, torch.tensor([1, 2])), mean=(0.5,) * 3, std=(0.5,) * 3)
    image, label = data[1]
    assert image.shape == (3, 8, 8) and label == 2
    assert image.max() == 1.0 and image.min() == -1.0  # white, and the zero padding a crop may bring in


def test_the_reference_pipeline_trains_and_reports_its_speed():
    torch.manual_seed(0)
    x, y = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8), torch.randint(3, (64,))
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    ref = ReferencePipeline(net, Split(x, y), (0.5,), (0.5,), batch_size=16, workers=0, total_steps=6)
    before = net[1].weight.detach().clone()
    assert ref.train_steps(6) > 0 and not torch.equal(before, net[1].weight)  # 6 steps: one epoch and a half
    assert 0.0 <= ref.test_error(Split(x, y), (0.5,), (0.5,)) <= 1.0
    ref.close()


def test_compile_rule():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert compile_mode("auto", cpu, 10**6, False) is None  # a CPU does not repay the compile time
    assert compile_mode("auto", gpu, 64_000, False) == "reduce-overhead"
    assert compile_mode("auto", gpu, 100, False) is None and compile_mode("auto", gpu, 64_000, True) is None
    assert compile_mode("on", cpu, 1, False) == "default" and compile_mode("off", gpu, 10**6, False) is None


def test_bench_writes_every_measurement_with_its_reference_to_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "runs", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["env"]["torch"] == torch.__version__
    (m,) = doc["measurements"]
    assert m["name"].startswith("runs: store overhead") and m["reference"].startswith("train() alone")
    assert m["passed"] in (True, False) and "vs train() alone" in capsys.readouterr().out


def test_a_context_measures_less_when_quick():
    assert BenchContext(quick=True).rounds(3, 5) == 3 and BenchContext().rounds(3, 5) == 5


@pytest.mark.slow
def test_a_compiled_run_trains_like_an_eager_one(tmp_path):
    from reslab.train import Recipe, TrainConfig, train

    def run(compile_setting):
        cfg = TrainConfig(
            "mlp_residual",
            "identity",
            model_options={"depth": 2, "width": 16},
            data_options={"train_size": 256, "val_size": 64, "test_size": 64, "dim": 8},
            recipe=Recipe(steps=4, batch_size=32, precision="fp32", schedule="constant"),
            eval_train_size=0,
            compile=compile_setting,
        )
        return train(cfg, tmp_path / compile_setting)

    eager, compiled = run("off"), run("on")
    assert compiled["status"] == "finished" and compiled["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-4)


def test_only_computing_commands_choose_their_threads(monkeypatch, tmp_path):
    from contextlib import contextmanager

    from reslab.train import hardware

    chosen = []

    @contextmanager
    def record():
        chosen.append(True)
        yield 1

    monkeypatch.setattr(hardware, "idle_core_threads", record)
    assert main(["models", "resnet20"]) == 0 and not chosen
    assert main(["bench", "--only", "runs"]) == 0 and chosen == [True]
