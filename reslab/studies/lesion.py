"""lesion — deleting a block barely hurts a ResNet; deleting a layer kills a plain net (Veit2016).

If a ResNet is an ensemble of many paths of differing length, removing one block removes
only the half of the paths through it and the net degrades gracefully; a plain net has a
single path, and removing any layer breaks it. The nets are the degradation study's deep
plain and residual nets (the same runs; nothing is trained twice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..probes import LesionResult, lesion_study
from . import degradation
from .base import Study, StudyContext
from .common import CHANCE_10, eval_data
from .results import FigureSpec, Series, StudyResult
from .stats import summarize
from .verdict import Verdict

CLAIM = (
    "Deleting one block of a trained ResNet at test time barely raises its error, while deleting one "
    "layer of a plain net drives it towards chance; error grows smoothly with the number of deleted blocks."
)
SMALL = 5.0  # percentage points: "barely hurts"
RULE = (
    "On the deepest nets of the degradation study, test error after deleting blocks at test time, mean "
    "over seeds. Holds when (1) the median increase over single deletions of non-downsampling residual "
    f"blocks is at most {SMALL:.0f} points, (2) the median single-layer deletion of the plain net of the "
    "same depth lands at least halfway from its baseline to chance (90%), and (3) the residual net's "
    "error grows smoothly with the number k of randomly deleted blocks: no single step in k accounts "
    "for more than half of the rise from k = 1 to the largest k."
)
ANCHORS = {
    "source": "Veit2016 Fig. 3-5 (CIFAR-10 test error %, pre-activation ResNet-110, 54 blocks)",
    "baseline test error %": 6.03,
    "most single deletions": "6.0–7.2",
    "downsampling blocks deleted": "12.2 and 12.1",
    "first block deleted": 42.2,
    "plain (VGG-like) net, any layer deleted": "≈ 90 (chance)",
    "stochastic-depth ResNet-110, any deletion": "≤ 6.88",
}


@dataclass(frozen=True)
class Settings:
    test_size: int | None  # test images the lesions are evaluated on (None: all)
    draws: int  # random draws per k (deletions and reorderings)
    k_step: int = 1  # evaluate k = 1, 1 + k_step, ... up to n/2


SETTINGS = {
    "smoke": Settings(test_size=64, draws=1, k_step=2),
    # every lesion costs a partial forward pass: 500 images, k = 1, 4, 7, ... and 2 draws keep the
    # six nets under a minute on 2 cores
    "quick": Settings(test_size=500, draws=2, k_step=3),
    "full": Settings(test_size=None, draws=10, k_step=1),
}


def _lesions(ctx: StudyContext, s: Settings, kind: str) -> tuple[list[LesionResult], list[str]]:
    deg = degradation.SETTINGS[ctx.scale]
    records = ctx.train(degradation.configs(deg, ctx.seeds, kind, deg.depths[-1]), f"{kind}-{deg.depths[-1]}")
    out = []
    for seed, record in enumerate(records):
        model = record.load_model()
        x, y = eval_data(record.config, "test", s.test_size)
        n = len(model.blocks)
        # random deletions and reorderings are asked of the residual nets only (rule 3)
        ks = list(range(1, n // 2 + 1, s.k_step)) if kind == "resnet" else []
        result = lesion_study(model, x, y, delete_k=ks, reorder_k=ks, draws=s.draws, seed=seed)
        result.save(ctx.data_path(f"{kind}-seed{seed}"))
        out.append(result)
    return out, [r.id for r in records]


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    depth = degradation.SETTINGS[ctx.scale].depths[-1]
    res, res_runs = _lesions(ctx, s, "resnet")
    plain, plain_runs = _lesions(ctx, s, "plain")

    v = Verdict()
    medians = [100 * r.median_single_increase for r in res]
    med = summarize(medians)
    v.check(f"median increase for deleting a residual block: {med} points (≤ {SMALL:.0f})", med.mean <= SMALL)
    halfway = []
    for r in plain:
        same = ~r.downsampling & np.isfinite(r.single_error)
        base = 100 * r.baseline_error
        halfway.append((100 * float(np.median(r.single_error[same])) - base) / max(CHANCE_10 - base, 1e-9))
    hw = summarize(halfway)
    plain_med = summarize([100 * float(np.nanmedian(r.single_error[~r.downsampling])) for r in plain])
    v.check(
        f"plain-{depth}: median single deletion {plain_med}% error, {100 * hw.mean:.0f}% of the way from its "
        f"baseline {summarize([100 * r.baseline_error for r in plain])}% to chance (≥ 50%)",
        hw.mean >= 0.5,
    )
    curve = np.mean([100 * r.delete_error.mean(axis=1) for r in res], axis=0)
    steps = np.diff(curve)
    rise = curve[-1] - curve[0] if len(curve) > 1 else float("nan")
    biggest = float(steps.max()) if len(steps) else float("nan")
    v.check(
        f"error vs k rises from {curve[0]:.1f}% (k = {res[0].delete_k[0]}) to {curve[-1]:.1f}% "
        f"(k = {res[0].delete_k[-1]}); largest single step {biggest:.1f} points",
        None if not len(steps) or rise <= 0 else biggest <= 0.5 * rise,
    )

    n = res[0].num_blocks
    blocks = list(range(n))
    marks = [float(i) for i in np.flatnonzero(res[0].downsampling)]
    figures = [
        FigureSpec(
            "bars", f"Test error after deleting one block (ResNet-{depth} vs plain-{depth})", "deleted block",
            "test error (%)", categories=[str(i) for i in blocks],
            series=[
                Series(f"ResNet-{depth}", blocks, _mean_over_seeds([100 * r.single_error for r in res]),
                       _std_over_seeds([100 * r.single_error for r in res])),
                Series(f"plain-{depth}", blocks, _mean_over_seeds([100 * r.single_error for r in plain]),
                       _std_over_seeds([100 * r.single_error for r in plain])),
            ],
            hlines=[{"y": float(np.mean([100 * r.baseline_error for r in res])), "label": "ResNet, nothing deleted"},
                    {"y": CHANCE_10, "label": "chance"}],
            marks=marks, caption="Shaded: downsampling blocks.",
        ),
        FigureSpec(
            "lines", "Deleting k random blocks", "blocks deleted (k)", "test error (%)",
            series=[Series(f"ResNet-{depth}", [float(k) for k in res[0].delete_k], list(curve),
                           list(np.std([100 * r.delete_error.mean(axis=1) for r in res], axis=0)), "solid+markers")],
            panel="k",
        ),
        FigureSpec(
            "lines", "Reordering by k random swaps", "Kendall τ of the block order", "test error (%)",
            series=[Series(f"ResNet-{depth}", _mean_over_seeds([r.reorder_tau.mean(axis=1) for r in res]),
                           _mean_over_seeds([100 * r.reorder_error.mean(axis=1) for r in res]), None,
                           "solid+markers")],
            panel="k",
        ),
    ]  # fmt: skip
    numbers = {
        "baseline test error %": summarize([100 * r.baseline_error for r in res]).to_dict(),
        f"ResNet-{depth} median single-deletion increase (points)": med.to_dict(),
        f"ResNet-{depth} worst non-downsampling deletion %": summarize(
            [100 * r.max_single_error_same_shape for r in res]
        ).to_dict(),
        f"plain-{depth} baseline test error %": summarize([100 * r.baseline_error for r in plain]).to_dict(),
        f"plain-{depth} median single-deletion error %": plain_med.to_dict(),
        "lesion evaluation cost (cached / naive branch evaluations)": round(
            res[0].branch_evals / res[0].naive_branch_evals, 3
        ),
    }
    return STUDY.result(
        ctx,
        v,
        numbers=numbers,
        key_number=f"delete one block: ResNet +{med.mean:.1f} points (median), plain → {plain_med.mean:.0f}%",
        figures=figures,
        setup={
            "models": f"the degradation study's ResNet-{depth} and plain-{depth} ({ctx.seeds} seeds each)",
            "data": f"{s.test_size or 'all'} test images",
            "lesions": f"every block; k random deletions and k random swaps of same-shape blocks, "
            f"k = 1…{n // 2} in steps of {s.k_step}, {s.draws} draws each",
        },
        runs=res_runs + plain_runs,
    )


def _mean_over_seeds(rows: list) -> list[float]:
    return [float(v) for v in np.nanmean(np.array(rows, dtype=float), axis=0)]


def _std_over_seeds(rows: list) -> list[float]:
    arr = np.array(rows, dtype=float)
    return [float(v) for v in (np.nanstd(arr, axis=0, ddof=1) if len(arr) > 1 else np.zeros(arr.shape[1]))]


STUDY = Study(
    id="lesion",
    title="Deleting a block barely hurts a ResNet (Veit2016)",
    claim=CLAIM,
    sources=["Veit2016"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    uses=("degradation",),  # the degradation study plans (and owns) these runs
)
