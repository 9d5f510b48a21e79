"""Speed of the training engine, for ``reslab bench``, each against a reference measured beside it.

- end to end (data, augmentation, forward, backward, optimizer): ``train()`` against the
  usual CIFAR-ResNet pipeline (``reference.py``) on the same model, batch and augmentation,
  alternating rounds, target >= 3x; and the test error both reach on a short Fashion-MNIST
  run (mean and std over seeds), target: equal within seed noise;
- precision: ``train()`` in fp32 and in bf16, paired, and whether ``precision=auto`` chose
  the faster; model FLOPs utilization of each over the machine's peak in that precision
  (target >= 15% of the best precision's peak for ResNet-20);
- the loop's own overhead and ``torch.compile``'s break-even: ``loop_bench.py``.
"""

from __future__ import annotations

import statistics
import tempfile

from ..benchmark import BenchContext, Measurement, alternate, conditions
from .bench_workloads import WARM, Workload, auto_precision, reference_pipeline, reslab_speed, train_config
from .loop import train
from .loop_bench import bench_loop
from .precision_bench import bench_precision
from .recipe import Recipe
from .setup import resolve_device

SPEEDUP_TARGET = 3.0


def end_to_end(work: Workload, ctx: BenchContext) -> Measurement:
    """``train()`` (default precision and layout) against the usual pipeline, alternating rounds."""
    steps, rounds = ctx.rounds(10, 30), ctx.rounds(3, 5)
    data, options, dataset = work.dataset(train_size=8192)
    reference = reference_pipeline(work, dataset)

    def usual() -> float:
        reference.train_steps(WARM)  # its workers' queue and the kernels warm again after the other's round
        return reference.train_steps(steps)

    def ours() -> float:
        return reslab_speed(work, data, options, dataset, "auto", steps)

    try:
        paired = alternate(ours, usual, rounds=rounds, warmup=0)
    finally:
        reference.close()
    ratio = paired.ratio
    device = resolve_device("auto")
    precision = auto_precision(work, dataset, device)
    return Measurement(
        f"train: {work.label(data)}, end to end",
        round(paired.median_a),
        "img/s",
        f">= {SPEEDUP_TARGET:g}x",
        ratio >= SPEEDUP_TARGET,
        f"train() {precision}, crop+flip on the batch; reference: DataLoader, 2 workers, per-sample "
        f"pad-crop+flip, fp32 NCHW; {rounds} rounds of {steps} steps of 128, {device}, {conditions()}",
        f"usual pipeline {paired.median_b:.0f} img/s",
        round(ratio, 2),
    )


def accuracy_parity(ctx: BenchContext) -> Measurement:
    """Test error of the default path and of the fp32 reference after the same short run, over seeds."""
    seeds, steps = ctx.rounds(3, 5), ctx.rounds(60, 200)
    work = Workload("resnet20", "fashion-mnist")
    data, options, dataset = work.dataset(20000, ctx.rounds(2000, 10000))
    ours, usual = [], []
    recipe = Recipe(steps=steps, batch_size=128, schedule="cosine", lr=0.1, weight_decay=1e-4)
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            result = train(train_config(work, data, options, recipe, seed, test=True), tmp, dataset=dataset)
        ours.append(100 * result["test_error"])
        reference = reference_pipeline(work, dataset, seed, total_steps=steps)
        reference.train_steps(steps)
        usual.append(100 * reference.test_error(dataset.test, dataset.mean, dataset.std))
        reference.close()
    (m1, s1), (m2, s2) = _mean_std(ours), _mean_std(usual)
    noise = 2 * (s1**2 / seeds + s2**2 / seeds) ** 0.5  # two standard errors of the difference
    return Measurement(
        f"train: ResNet-20 {data}, test error after {steps} steps, default path vs fp32 reference",
        round(m1, 2),
        "% error",
        "equal within seed noise (|difference| <= 2 standard errors)",
        abs(m1 - m2) <= noise,
        f"{seeds} seeds: train() {m1:.2f} ± {s1:.2f}% ({result['precision']}), reference {m2:.2f} ± {s2:.2f}%; "
        f"difference {m1 - m2:+.2f}, 2 standard errors {noise:.2f}; {len(dataset.test)} test images",
        f"reference {m2:.2f} ± {s2:.2f}%, difference {m1 - m2:+.2f} points",
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def bench(ctx: BenchContext) -> list[Measurement]:
    works = [Workload("resnet20", "fashion-mnist"), Workload("resnet20", "cifar-shape")]
    works += [] if ctx.quick else [Workload("resnet56", "fashion-mnist"), Workload("resnet56", "cifar-shape")]
    out = []
    for work in works:
        ctx.say(f"{work.label(work.data)}: train() and the usual pipeline, alternating")
        out.append(end_to_end(work, ctx))
    ctx.say("test error of train() and of the reference over seeds")
    out.append(accuracy_parity(ctx))
    out += bench_precision(ctx)
    out += bench_loop(ctx)
    return out
