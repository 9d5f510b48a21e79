"""Speed of the lesion, path and landscape probes, for ``reslab bench``: time, and time over the floor.

A probe's floor is the time its counted FLOPs (``torch.utils.flop_counter``: matrix
multiplies and convolutions) take at the machine's peak in the precision it computes in,
measured in the same run; "x floor" is the measured time over that.

- Lesions: the baseline plus all single deletions with cached block inputs must cost at
  most 0.55x the naive way (one full forward per deletion plus the baseline), in counted
  branch evaluations (exact: (n+1)/(2n)) and in wall-clock (fastest of repeats).
- Landscape: a 21x21 grid on a ResNet-20 (Fashion-MNIST shape, 28x28x1) with 2,000
  evaluation samples, target within 2x of its floor (and < 5 minutes where the floor
  allows). Every grid point costs the same (set the weights, evaluate 2,000 samples), so a
  few points are timed and the 441-point time is extrapolated from them.
- Paths: the quick paths study's setting on the degradation study's ResNet-56.
Weights are random: the cost of a forward pass does not depend on training.
"""

from __future__ import annotations

import time

import torch

from ..benchmark import BenchContext, Measurement, conditions, count_flops
from ..models import create_model
from ..train.hardware import resolve_precision
from ._evaluation import model_device
from .landscape import loss_plane
from .lesion import lesion_cost, lesion_predictions
from .paths import path_gradients

LESION_TARGET = 0.55
LANDSCAPE_TARGET_S = 300.0
LANDSCAPE_FLOOR_TARGET = 2.0


def _images(n: int, side: int = 28) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, side, side, generator=gen), torch.randint(10, (n,), generator=gen)


def floor_seconds(flops: float, precision: str, ctx: BenchContext) -> float:
    """The time ``flops`` take at the peak; a peak sample is taken now, under the load the probe just saw."""
    ctx.peak.sample()
    return flops / ctx.peak.peak(precision)


def _lesion(name: str, samples: int, repeats: int, ctx: BenchContext) -> list[Measurement]:
    ctx.say(f"lesions of {name}: cached and naive")
    model = create_model(name, in_channels=1, image_size=28)
    x, _ = _images(samples)
    cost = lesion_cost(model, x, batch_size=samples, repeats=repeats)
    floor = floor_seconds(count_flops(lambda: lesion_predictions(model, x, batch_size=samples)), "fp32", ctx)
    what = f"lesion: all single deletions, {name} ({cost['blocks']} blocks), {samples} images"
    detail = (
        f"{cost['cached_branch_evals']} vs {cost['naive_branch_evals']} branch evaluations; "
        f"{cost['cached_seconds']:.2f} s vs {cost['naive_seconds']:.2f} s (fastest of {repeats}, alternating); "
        f"cached: {cost['cached_seconds'] / floor:.1f}x its fp32 floor of {floor:.3f} s; {conditions()}"
    )
    ratios = (("counted cost", cost["count_ratio"]), ("wall-clock", cost["wall_ratio"]))
    return [
        Measurement(
            f"{what}: {kind} / naive",
            round(r, 3),
            "x naive",
            f"<= {LESION_TARGET}",
            r <= LESION_TARGET,
            detail,
            "naive: one full forward per deletion",
            round(r, 3),
        )
        for kind, r in ratios
    ]


def _landscape(ctx: BenchContext, precision: str = "fp32", samples: int = 2000, steps: int = 21) -> Measurement:
    ctx.say(f"landscape grid points in {precision}")
    model = create_model("resnet20", in_channels=1, image_size=28)
    x, y = _images(samples)
    loss_plane(model, x[:50], y[:50], steps=1, precision=precision)  # warm-up: first-call allocations
    measured_steps = ctx.rounds(2, 3)
    t = time.perf_counter()
    result = loss_plane(model, x, y, steps=measured_steps, batch_size=500, precision=precision)
    per_point = (time.perf_counter() - t) / result.loss.size
    total = per_point * steps * steps
    with torch.no_grad():
        floor = floor_seconds(count_flops(lambda: model.eval()(x)) * steps * steps, precision, ctx)
    model.train()
    ratio = total / floor
    passed = ratio <= LANDSCAPE_FLOOR_TARGET and (total < LANDSCAPE_TARGET_S or floor * 2 > LANDSCAPE_TARGET_S)
    return Measurement(
        f"landscape: {steps}x{steps} grid, resnet20 (28x28x1), {samples} samples, {precision}",
        round(total, 1),
        "s",
        f"<= {LANDSCAPE_FLOOR_TARGET:g}x floor, and < {LANDSCAPE_TARGET_S:.0f} s where the floor allows",
        passed,
        f"extrapolated from {result.loss.size} measured points at {per_point:.2f} s each "
        f"({samples / per_point:.0f} images/s); {conditions()}",
        f"floor {floor:.0f} s at the {precision} peak",
        round(ratio, 2),
    )


def _paths(ctx: BenchContext) -> Measurement:
    """The quick paths study's probe: ResNet-56 (widths 8, 16, 32) on 14x14, 64 images, 8 paths per length."""
    ctx.say("path gradients")
    model = create_model("resnet56", in_channels=1, image_size=14, widths=(8, 16, 32))
    x, y = _images(64, side=14)
    settings = dict(samples_per_length=8, batch_size=16)
    result = path_gradients(model, x, y, **settings)
    floor = floor_seconds(count_flops(lambda: path_gradients(model, x, y, **settings)), "fp32", ctx)
    return Measurement(
        "paths: ResNet-56 (8,16,32) 14x14, 64 images, 8 paths per length (the quick study's setting)",
        round(result.seconds, 2),
        "s",
        detail=f"{(result.num_blocks + 1) * 8} path gradients; {conditions()}",
        reference=f"floor {floor:.2f} s at the fp32 peak",
        ratio=round(result.seconds / floor, 1),
    )


def bench_ensemble(ctx: BenchContext) -> list[Measurement]:
    out = [*_lesion("resnet20", 256, ctx.rounds(2, 3), ctx), *_lesion("resnet56", 128, 2, ctx)]
    out.append(_landscape(ctx, "fp32"))
    if resolve_precision("auto", model_device(torch.nn.Linear(1, 1))) == "bf16":  # not where bf16 is emulated
        out.append(_landscape(ctx, "bf16"))
    out.append(_paths(ctx))
    return out
