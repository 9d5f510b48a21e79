"""paths — a ResNet is an ensemble of 2^n paths, and its gradient comes from the short ones (Veit2016).

Unravelling n residual blocks gives 2^n paths; their lengths follow Binomial(n, 1/2), so
most are of length about n/2. But each branch a path passes through shrinks the gradient,
so the total gradient is carried by paths much shorter than n/2. Measured by Veit2016's
sampling method on the degradation study's trained deep ResNets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..probes import PathResult, path_gradients
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
    images: int  # training images the gradient is averaged over
    samples_per_length: int
    batch_size: int


SETTINGS = {
    "smoke": Settings(images=8, samples_per_length=2, batch_size=8),
    "quick": Settings(images=64, samples_per_length=8, batch_size=16),
    "full": Settings(images=512, samples_per_length=32, batch_size=32),
}


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    deg = degradation.SETTINGS[ctx.scale]
    depth = deg.depths[-1]
    net = degradation.trained(ctx, deg, kinds=("resnet",), depths=(depth,))[degradation.label("resnet", depth)]
    records = net.records
    results: list[PathResult] = []
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
    n = results[0].num_blocks
    slope = summarize([r.log10_decay_per_block for r in results])
    r2 = summarize([r.decay_r2 for r in results])
    ends = [r.effective_range[1] for r in results]
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
        all(e < n / 2 for e in ends),
    )
    lengths = [float(k) for k in results[0].lengths]

    def mean(attr: str) -> list[float]:
        return [float(v) for v in np.mean([getattr(r, attr) for r in results], axis=0)]

    # magnitudes span orders of magnitude: mean and spread over seeds in log space, so the
    # band is a factor either way and never reaches zero on the log axis
    logs = np.log10(np.array([r.magnitude for r in results], dtype=float))
    centre, spread = logs.mean(axis=0), logs.std(axis=0, ddof=1) if len(logs) > 1 else np.zeros(logs.shape[1])
    figures = [
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
            [
                Series(
                    f"ResNet-{depth}",
                    lengths,
                    list(10**centre),
                    style="solid+markers",
                    lower=list(10 ** (centre - spread)),
                    upper=list(10 ** (centre + spread)),
                )
            ],
            logy=True,
            panel="veit6",
            caption="Geometric mean over seeds; band: × or ÷ the geometric std.",
        ),
        FigureSpec(
            "lines",
            "(c) Total gradient per length",
            "path length",
            "share of total gradient",
            [Series(f"ResNet-{depth}", lengths, mean("contribution_share"))],
            panel="veit6",
            marks=[float(results[0].effective_range[0]), float(results[0].effective_range[1])],
            caption=f"Marks: the effective range holding {SHARE:.0%} of the total (seed 0).",
        ),
    ]
    numbers = {
        "blocks n": n,
        "mean path length n/2": n / 2,
        "paths holding 90% of all paths": f"{results[0].path_range[0]}–{results[0].path_range[1]}",
        "effective range per seed": [list(r.effective_range) for r in results],
        "effective paths, share of all paths": summarize([r.effective_path_share for r in results]).to_dict(),
        "log10 magnitude per block on the path": slope.to_dict(),
        "straight-line R²": r2.to_dict(),
    }
    return STUDY.result(
        ctx,
        v,
        numbers=numbers,
        key_number=f"effective range {results[0].effective_range[0]}–{results[0].effective_range[1]} "
        f"of n = {n} blocks (mean length {n / 2:g})",
        figures=figures,
        setup={
            "models": f"the degradation study's ResNet-{depth} ({len(ctx.seeds)} seeds)",
            "data": f"{s.images} training images, batches of {s.batch_size}",
            "sampling": f"{s.samples_per_length} random paths per length, every length 0…{n}",
        },
        runs=[r.id for r in records],
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
    uses=("degradation",),
    order=80,
)
