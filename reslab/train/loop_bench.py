"""The training loop's own cost, and when ``torch.compile`` pays for itself, for ``reslab bench``.

- overhead: ``train()`` against a bare step loop (forward, loss, backward, fused SGD, no
  host sync) on a deep narrow MLP, where per-step costs show; alternating rounds, target
  >= 0.85;
- compile break-even (full bench only; compiling takes tens of seconds on a CPU): the
  training step of ResNet-20 compiled by ``torch.compile`` against the eager step, and how
  many steps repay the compile time.
"""

from __future__ import annotations

import tempfile
import time

import torch
import torch.nn.functional as F

from ..benchmark import BenchContext, Measurement, alternate, conditions
from ..data import load_dataset
from ..models import create_model
from .bench_workloads import Workload, auto_precision
from .config import TrainConfig
from .loop import train
from .recipe import Recipe
from .setup import resolve_device

OVERHEAD_TARGET = 0.85
_MLP = {"depth": 20}
_DATA = {"train_size": 4096, "val_size": 0, "test_size": 0, "dim": 16}


def _loop_speed(steps: int) -> float:
    cfg = TrainConfig(
        "mlp_residual",
        "identity",
        model_options=_MLP,
        recipe=Recipe(steps=steps, batch_size=128, precision="fp32", schedule="constant"),
        data_options=_DATA,
        eval_train_size=0,
        test=False,
        log_every=steps,
    )
    with tempfile.TemporaryDirectory() as d:
        return train(cfg, d, resume=False)["img_per_s"]


def _bare_loop(steps: int):
    ds = load_dataset("identity", **_DATA)
    device = resolve_device("auto")
    torch.manual_seed(0)
    model = create_model("mlp_residual", **_MLP, input_shape=(16,), num_classes=16).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True)
    x, y = ds.train.x[:128].to(device), ds.train.y[:128].to(device)

    def step() -> torch.Tensor:
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def speed() -> float:
        step().item()
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()  # no host sync inside the loop: the fastest a loop can be
        loss.item()
        return steps * 128 / (time.perf_counter() - start)

    return speed


def loop_overhead(ctx: BenchContext) -> Measurement:
    ctx.say("train() and a bare step loop, alternating")
    steps = ctx.rounds(30, 100)
    paired = alternate(lambda: _loop_speed(steps), _bare_loop(steps), rounds=ctx.rounds(3, 5))
    return Measurement(
        "train: loop overhead, train() vs a bare step loop (MLP, 20 residual units)",
        round(paired.ratio, 3),
        "x bare",
        f">= {OVERHEAD_TARGET}",
        paired.ratio >= OVERHEAD_TARGET,
        f"{paired.median_a:.0f} vs {paired.median_b:.0f} img/s, median of {len(paired.a)} alternating rounds; "
        f"{conditions()}",
        f"bare loop {paired.median_b:.0f} img/s",
        round(paired.ratio, 3),
    )


def compile_break_even(ctx: BenchContext) -> Measurement:
    """Compile time over the time a compiled step saves: the steps after which compiling has paid."""
    ctx.say("torch.compile: compiling the training step of ResNet-20")
    work = Workload("resnet20", "fashion-mnist")
    _, _, dataset = work.dataset(train_size=1024)
    device = resolve_device("auto")
    bf16 = auto_precision(work, dataset, device) == "bf16"
    mode = "reduce-overhead" if device.type == "cuda" else "default"  # CUDA graphs where there is a queue to feed
    torch.manual_seed(0)
    x = torch.randn(128, *dataset.shape, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(10, (128,), device=device)

    def stepper(compiled: bool):
        model = work.net(dataset).to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=True)
        forward = torch.compile(model, mode=mode) if compiled else model

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(forward(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    eager, compiled = stepper(False), stepper(True)
    start = time.perf_counter()
    compiled()
    compile_s = time.perf_counter() - start
    steps = 10
    paired = alternate(
        lambda: _seconds_per_step(eager, steps, device), lambda: _seconds_per_step(compiled, steps, device), rounds=3
    )
    saved = paired.median_a - paired.median_b
    even = compile_s / saved if saved > 0 else float("inf")
    return Measurement(
        f"train: torch.compile ({mode}) break-even, ResNet-20 28x28x1, batch 128, {'bf16' if bf16 else 'fp32'}",
        round(even) if saved > 0 else float("inf"),
        "steps",
        detail=f"compile {compile_s:.0f} s; eager {1e3 * paired.median_a:.1f} ms, compiled {1e3 * paired.median_b:.1f} "
        f"ms per step (medians of 3 alternating rounds); {conditions()}",
        reference=f"eager {1e3 * paired.median_a:.1f} ms/step",
        ratio=round(paired.ratio, 2),
    )


def _seconds_per_step(step, steps: int, device: torch.device) -> float:
    step()
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps


def bench_loop(ctx: BenchContext) -> list[Measurement]:
    return [loop_overhead(ctx)] + ([] if ctx.quick else [compile_break_even(ctx)])
