"""Does ``precision=auto`` choose the faster precision here, and how much of the peak does training use?

``train()`` in fp32 and in bf16, alternating rounds, for a net of large convolutions
(ResNet-20) and for the quick catalogue's MLP stand-in (small matrix multiplies): auto is
right when it picked the faster (within 5%, a tie, either is right). The same rounds give
each precision's model FLOPs utilization: the FLOPs ``torch.utils.flop_counter`` counts for
a training step of the model, times steps per second, over the peak of that precision
measured in the same run (``benchmark.PeakMeter``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..benchmark import BenchContext, Measurement, Paired, alternate, conditions, count_flops
from .bench_workloads import Workload, auto_precision, reslab_speed
from .setup import resolve_device

MFU_TARGET = 0.15
TIE = 0.05  # speeds this close are a tie: either choice is right


def training_flops_per_image(work: Workload, dataset, batch: int = 128) -> float:
    """FLOPs of one forward and backward per image (matrix multiplies and convolutions)."""
    net = work.net(dataset)
    x = torch.zeros(batch, *dataset.shape)
    y = torch.zeros(batch, dtype=torch.long)
    return count_flops(lambda: F.cross_entropy(net(x), y).backward()) / batch


def _paired_precisions(work: Workload, ctx: BenchContext) -> tuple[Paired, str, object]:
    steps, rounds = ctx.rounds(10, 30), ctx.rounds(3, 5)
    data, options, dataset = work.dataset(train_size=8192)

    def fp32() -> float:
        ctx.peak.sample()
        return reslab_speed(work, data, options, dataset, "fp32", steps)

    paired = alternate(fp32, lambda: reslab_speed(work, data, options, dataset, "bf16", steps), rounds, warmup=0)
    return paired, data, dataset


def precision_choice(work: Workload, ctx: BenchContext) -> tuple[Measurement, Paired, object]:
    ctx.say(f"{work.label(work.data)}: fp32 and bf16, alternating")
    paired, data, dataset = _paired_precisions(work, ctx)
    auto = auto_precision(work, dataset, resolve_device("auto"))
    speedup = 1 / paired.ratio  # bf16 over fp32, per round
    faster = "tie" if abs(speedup - 1) <= TIE else ("bf16" if speedup > 1 else "fp32")
    return (
        Measurement(
            f"precision: {work.label(data)}, bf16 / fp32 training speed",
            round(speedup, 2),
            "x fp32",
            "precision=auto picks the faster",
            faster in ("tie", auto),
            f"auto chose {auto}; fp32 {paired.median_a:.0f}, bf16 {paired.median_b:.0f} img/s (medians of "
            f"{len(paired.a)} alternating rounds); {conditions()}",
            f"fp32 {paired.median_a:.0f} img/s",
            round(speedup, 2),
        ),
        paired,
        dataset,
    )


def utilization(work: Workload, paired: Paired, dataset, ctx: BenchContext) -> list[Measurement]:
    """MFU of each precision over its own peak, and of the default path over the best precision's peak."""
    flops = training_flops_per_image(work, dataset)
    speeds = {"fp32": paired.median_a, "bf16": paired.median_b}
    out = []
    for precision, speed in speeds.items():
        peak = ctx.peak.peak(precision)
        out.append(
            Measurement(
                f"MFU: {work.label(dataset.name)}, training in {precision}",
                round(100 * speed * flops / peak, 1),
                "% of peak",
                detail=f"{speed * flops / 1e9:.0f} GFLOP/s of model FLOPs ({flops / 1e6:.0f} MFLOP per image); "
                f"{ctx.peak.describe()}",
                reference=f"{precision} peak {peak / 1e9:.0f} GFLOP/s",
                ratio=round(speed * flops / peak, 3),
            )
        )
    auto = auto_precision(work, dataset, resolve_device("auto"))
    best = ctx.peak.best_precision()
    mfu = speeds[auto] * flops / ctx.peak.peak(best)
    out.append(
        Measurement(
            f"MFU: {work.label(dataset.name)}, default path ({auto}) over the best peak ({best})",
            round(100 * mfu, 1),
            "% of peak",
            f">= {100 * MFU_TARGET:g}%",
            mfu >= MFU_TARGET,
            f"{speeds[auto] * flops / 1e9:.0f} GFLOP/s of model FLOPs",
            f"{best} peak {ctx.peak.peak(best) / 1e9:.0f} GFLOP/s",
            round(mfu, 3),
        )
    )
    return out


def bench_precision(ctx: BenchContext) -> list[Measurement]:
    resnet = Workload("resnet20", "fashion-mnist")
    standin = Workload("mlp_residual", "fashion-mnist", {"depth": 20, "width": 64}, augment=False)
    choice, paired, dataset = precision_choice(resnet, ctx)
    out = [choice, *utilization(resnet, paired, dataset, ctx)]
    out.append(precision_choice(standin, ctx)[0])
    return out
