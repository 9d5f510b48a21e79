"""Speed targets of the gradient-flow, propagation, shattered-gradient and identity probes.

- Shattered gradients: depths 1..50 x the six families x 20 seeds x 256 points, target
  < 60 s on 2 CPU cores (the whole computation: building the nets, the gradients, the
  statistics).
- Identity fitting: the default settings (k = 1, 2, 4, 8, 16; 3 seeds; direct fits and
  the construction), which the quick study runs whole: target <= 60 s.
- Gradient norms of the vanishing study's net (depth-50 width-256 MLP, unit init, in
  float64, batch 128) and signal propagation through ResNet-56: reported, no target.
The machine's load average is in every detail line: these are wall-clock times, and the
CPUs here are shared.
"""

from __future__ import annotations

import time

import torch

from ..benchmark import BenchContext, Measurement, conditions, count_flops
from ..models import create_model, mlp
from .gradflow import gradient_norms
from .identity import identity_fitting
from .propagation import signal_propagation
from .shattered import FAMILIES, shattered_gradients

SHATTERED_TARGET_S = 60.0
IDENTITY_TARGET_S = 60.0


def shattered_measurement(ctx: BenchContext | None = None, **kwargs) -> Measurement:
    """Time the full default sweep (keyword arguments override it, e.g. for a smoke test).

    With ``ctx``, also its floor: the FLOPs of the sweep, counted on 2 seeds and scaled to
    all (each seed is one more stacked net of the same size), at the fp32 peak.
    """
    settings = {**dict(families=tuple(FAMILIES), max_depth=50, seeds=20, points=256), **kwargs}
    r = shattered_gradients(**settings)
    total = r.total_seconds
    floor = None
    if ctx is not None:
        flops = count_flops(lambda: shattered_gradients(**{**settings, "seeds": 2})) * settings["seeds"] / 2
        ctx.peak.sample()
        floor = flops / ctx.peak.peak("fp32")
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in r.seconds.items())
    what = (
        f"shattered: depths 1-{settings['max_depth']} x {len(settings['families'])} families"
        f" x {settings['seeds']} seeds x {settings['points']} points"
    )
    return Measurement(
        what,
        round(total, 2),
        "s",
        f"< {SHATTERED_TARGET_S:g} s",
        total < SHATTERED_TARGET_S,
        f"{parts}; {conditions()}",
        f"floor {floor:.1f} s at the fp32 peak" if floor else "",
        round(total / floor, 1) if floor else None,
    )


def identity_measurement(**kwargs) -> Measurement:
    r = identity_fitting(**kwargs)
    ks = ",".join(str(k) for k in r.ks)
    what = f"identity: k = {ks}, {r.settings['seeds']} seeds, {r.settings['steps']}+{r.settings['extra_steps']} steps"
    return Measurement(
        what, round(r.seconds, 2), "s", f"<= {IDENTITY_TARGET_S:g} s", r.seconds <= IDENTITY_TARGET_S, conditions()
    )


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_signal(ctx: BenchContext) -> list[Measurement]:
    ctx.say("shattered gradients, identity fitting, gradient norms, propagation")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 1, 28, 28, generator=gen), torch.randint(0, 10, (128,), generator=gen)
    deep = mlp(depth=50, width=256, init="unit")
    resnet = create_model("resnet56", in_channels=1, image_size=28)
    norms_s = _timed(lambda: gradient_norms(deep, x, y, dtype=torch.float64))
    prop_s = _timed(lambda: signal_propagation(resnet, x, y))
    return [
        shattered_measurement(ctx),
        *([] if ctx.quick else [identity_measurement()]),
        Measurement(
            "gradient norms: depth-50 width-256 MLP, float64, 128 images", round(norms_s, 3), "s", detail=conditions()
        ),
        Measurement(
            "propagation: ResNet-56, 128 Fashion-MNIST-shaped images", round(prop_s, 3), "s", detail=conditions()
        ),
    ]
