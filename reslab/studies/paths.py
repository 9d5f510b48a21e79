"""paths — a ResNet is an ensemble of 2^n paths, and its gradient comes from the short ones (Veit2016).

Unravelling n residual blocks gives 2^n paths; their lengths follow Binomial(n, 1/2), so
most are of length about n/2. But each branch a path passes through shrinks the gradient,
so the total gradient is carried by paths much shorter than n/2. Measured by Veit2016's
sampling method on the degradation study's trained deep ResNets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..probes import PathResult, path_gradients
from ..train import TrainConfig
from . import degradation
from .base import Study, StudyContext
from .common import eval_data
from .results import FigureSpec, Series, StudyResult
from .stats import summarize
from .trained import converged
from .verdict import Verdict

CLAIM = (
    "The gradient a trained ResNet receives comes from its short paths: the gradient along a path "
    "falls roughly exponentially with its length, and the lengths that carry most of it are far "
    "shorter than the typical path length n/2."
)
SHARE = 0.9
R2 = 0.9
RULE = (
    "On each trained deep ResNet of the degradation study (converged: its precondition): (1) the mean gradient magnitude at the first "
    "block's input falls roughly exponentially with path length k: the fitted slope of log10(magnitude) "
    f"against k is negative with R² ≥ {R2} (mean over seeds), and (2) the effective range (the shortest "
    f"interval of lengths holding {SHARE:.0%} of the total contribution, count × magnitude) ends below "
    "the mean path length n/2 for every seed."
)
ANCHORS = {
    "source": "Veit2016 Sec. 6, Fig. 6 (ResNet-110, 54 blocks)",
    "paths holding 95% of all paths": "lengths 19–35",
    "effective paths (most of the gradient)": "lengths 5–17, 0.45% of all paths",
    "training on short paths only": "5.96% vs 6.10% test error",
}


@dataclass(frozen=True)
class Settings:
    nets: degradation.Settings  # the degradation study's nets at the same scale; its deepest ResNet is measured
    images: int  # training images the gradient is averaged over
    samples_per_length: int
    batch_size: int


SETTINGS = {
    "smoke": Settings(degradation.SETTINGS["smoke"], images=8, samples_per_length=2, batch_size=8),
    "quick": Settings(degradation.SETTINGS["quick"], images=64, samples_per_length=8, batch_size=16),
    "full": Settings(degradation.SETTINGS["full"], images=512, samples_per_length=32, batch_size=32),
}


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return degradation.plan(s.nets, seeds, degradation.deepest_resnet(s.nets))


def measure(ctx: StudyContext, s: Settings, records) -> list[PathResult]:
    results = []
    for seed, record in zip(ctx.seeds, records):
        x, y = eval_data(record.config, "train", s.images)
        r = path_gradients(
            record.load_model(),
            x,
            y,
            samples_per_length=s.samples_per_length,
            batch_size=s.batch_size,
            share=SHARE,
            seed=seed,
        )
        r.save(ctx.data_path(f"resnet-seed{seed}"))
        results.append(r)
    return results


def judge(results: list[PathResult], net) -> Verdict:
    n = results[0].num_blocks
    slope = summarize([r.log10_decay_per_block for r in results])
    r2 = summarize([r.decay_r2 for r in results])
    v = Verdict()
    converged(v, [net])
    v.check(
        f"log10 gradient magnitude falls by {-slope.mean:.3f} ± {slope.std:.3f} per block on the path, "
        f"straight-line fit R² = {r2.mean:.2f}",
        slope.mean < 0 and r2.mean >= R2,
    )
    v.check(
        f"effective ranges {', '.join(f'{a}–{b}' for a, b in (r.effective_range for r in results))} end "
        f"below the mean path length n/2 = {n / 2:g}",
        all(r.effective_range[1] < n / 2 for r in results),
    )
    return v


def figures(results: list[PathResult], name: str) -> list[FigureSpec]:
    """Veit2016 Fig. 6: (a) how many paths of each length, (b) the gradient along one, (c) their product."""
    lengths = [float(k) for k in results[0].lengths]
    share = [float(v) for v in np.mean([r.contribution_share for r in results], axis=0)]
    # magnitudes span orders of magnitude: mean and spread over seeds in log space, so the
    # band is a factor either way and never reaches zero on the log axis
    logs = np.log10(np.array([r.magnitude for r in results], dtype=float))
    centre, spread = logs.mean(axis=0), logs.std(axis=0, ddof=1) if len(logs) > 1 else np.zeros(logs.shape[1])
    magnitude = Series(
        name,
        lengths,
        list(10**centre),
        style="solid+markers",
        lower=list(10 ** (centre - spread)),
        upper=list(10 ** (centre + spread)),
    )
    first = results[0].effective_range
    return [
        FigureSpec(
            "lines",
            "(a) Distribution of path length",
            "path length",
            "share of paths",
            [Series("Binomial(n, 1/2)", lengths, list(results[0].path_share))],
            panel="veit6",
        ),
        FigureSpec(
            "lines",
            "(b) Gradient magnitude per path",
            "path length",
            "gradient magnitude",
            [magnitude],
            logy=True,
            panel="veit6",
            caption="Geometric mean over seeds; band: × or ÷ the geometric std.",
        ),
        FigureSpec(
            "lines",
            "(c) Total gradient per length",
            "path length",
            "share of total gradient",
            [Series(name, lengths, share)],
            panel="veit6",
            marks=[float(first[0]), float(first[1])],
            caption=f"Marks: the effective range holding {SHARE:.0%} of the total (seed 0).",
        ),
    ]


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    (net,) = degradation.trained(ctx, s.nets, degradation.deepest_resnet(s.nets)).values()
    results = measure(ctx, s, net.records)
    n, first = results[0].num_blocks, results[0]
    numbers = {
        "blocks n": n,
        "mean path length n/2": n / 2,
        "paths holding 90% of all paths": f"{first.path_range[0]}–{first.path_range[1]}",
        "effective range per seed": [list(r.effective_range) for r in results],
        "effective paths, share of all paths": summarize([r.effective_path_share for r in results]).to_dict(),
        "log10 magnitude per block on the path": summarize([r.log10_decay_per_block for r in results]).to_dict(),
        "straight-line R²": summarize([r.decay_r2 for r in results]).to_dict(),
    }
    return STUDY.result(
        ctx,
        judge(results, net),
        numbers=numbers,
        key_number=f"effective range {first.effective_range[0]}–{first.effective_range[1]} "
        f"of n = {n} blocks (mean length {n / 2:g})",
        figures=figures(results, net.label),
        setup={
            "models": f"the degradation study's {net.label} ({len(ctx.seeds)} seeds)",
            "data": f"{s.images} training images, batches of {s.batch_size}",
            "sampling": f"{s.samples_per_length} random paths per length, every length 0…{n}",
        },
        runs=[r.id for r in net.records],
    )


STUDY = Study(
    id="paths",
    title="The gradient comes from short paths (Veit2016)",
    claim=CLAIM,
    sources=["Veit2016"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=80,
)
