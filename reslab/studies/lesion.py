"""lesion — deleting a block barely hurts a ResNet; deleting a layer kills a plain net (Veit2016).

If a ResNet is an ensemble of many paths of differing length, removing one block removes
only the half of the paths through it and the net degrades gracefully; a plain net has a
single path, and removing any of its layers breaks it. As in Veit2016, the plain net is one
that trains well (their VGG; here the degradation study's shallow plain net, at its
converged training error), and the ResNet is the degradation study's deepest one: the same
runs, nothing trained twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..probes import LesionResult, lesion_study
from ..runs.store import RunRecord
from ..train import TrainConfig
from . import degradation
from .base import Study, StudyContext
from .common import CHANCE_10, eval_data
from .results import FigureSpec, Series, StudyResult
from .stats import summarize
from .trained import converged
from .verdict import Verdict

SMALL = 5.0  # percentage points: "barely hurts"
HALFWAY = 0.5  # share of the way from the baseline to chance that "kills" a plain net
STEP_SHARE = 0.5  # no single step in k may carry more than this share of the rise: "smoothly"
CLAIM = (
    "Deleting one block of a trained ResNet at test time barely raises its error, while deleting one "
    "block of a plain net that trains well drives it towards chance; the ResNet's error grows smoothly "
    "with the number of deleted blocks."
)
RULE = (
    "Test error after deleting blocks at test time, on converged nets of the degradation study (its "
    "precondition), mean over seeds. Holds when (1) the median increase over single deletions of "
    f"non-downsampling blocks of the deepest ResNet is at most {SMALL:g} points, (2) the median single "
    f"deletion in the shallowest plain net (the plain net that trains well) lands at least {HALFWAY:.0%} "
    "of the way from its baseline to chance (90%), and (3) the ResNet's error grows smoothly with the "
    f"number k of randomly deleted blocks: no single step in k carries more than {STEP_SHARE:.0%} of the "
    "rise from k = 1 to the largest k."
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
class Lesions:  # how the probe deletes blocks (stochastic-depth deletes the same way)
    test_size: int | None  # test images the lesions are evaluated on (None: all)
    draws: int  # random draws per k (deletions and reorderings)
    k_step: int = 1  # evaluate k = 1, 1 + k_step, ... up to n/2


@dataclass(frozen=True)
class Settings:
    nets: degradation.Settings  # the degradation study's nets at the same scale
    lesions: Lesions


SETTINGS = {
    scale: Settings(degradation.SETTINGS[scale], lesions)
    for scale, lesions in {
        "smoke": Lesions(test_size=64, draws=1, k_step=2),
        "quick": Lesions(test_size=1000, draws=6, k_step=1),
        "full": Lesions(test_size=None, draws=10, k_step=1),
    }.items()
}


def nets(s: Settings) -> list[tuple[str, int]]:
    """The degradation nets lesioned: the deepest residual net and the shallowest plain one."""
    return [*degradation.deepest_resnet(s.nets), ("plain", s.nets.depths[0])]


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return degradation.plan(s.nets, seeds, nets(s))


def lesions(ctx: StudyContext, s: Lesions, records: Sequence[RunRecord], name: str, random_k: bool) -> list:
    """The lesion probe on each trained net (with k random deletions and swaps if ``random_k``)."""
    out = []
    for seed, record in zip(ctx.seeds, records):
        model = record.load_model()
        x, y = eval_data(record.config, "test", s.test_size)
        ks = list(range(1, len(model.blocks) // 2 + 1, s.k_step)) if random_k else []
        result = lesion_study(model, x, y, delete_k=ks, reorder_k=ks, draws=s.draws, seed=seed)
        result.save(ctx.data_path(f"{name}-seed{seed}"))
        out.append(result)
    return out


def k_curve(results: Sequence[LesionResult]) -> np.ndarray:
    """Mean test error (%) over seeds and draws for each number k of deleted blocks."""
    return np.mean([100 * r.delete_error.mean(axis=1) for r in results], axis=0)


def smooth_check(v: Verdict, name: str, results: Sequence[LesionResult]) -> None:
    curve = k_curve(results)
    steps = np.diff(curve)
    rise = curve[-1] - curve[0] if len(curve) > 1 else float("nan")
    biggest = float(steps.max()) if len(steps) else float("nan")
    ks = results[0].delete_k
    v.check(
        f"{name}: error vs k rises from {curve[0]:.1f}% (k = {ks[0]}) to {curve[-1]:.1f}% (k = {ks[-1]}); "
        f"largest single step {biggest:.1f} points ({biggest / rise:.0%} of the rise)",
        None if not len(steps) or rise <= 0 else biggest <= STEP_SHARE * rise,
    )


def judge(res: list[LesionResult], plain: list[LesionResult], groups, names: tuple[str, str]) -> Verdict:
    v = Verdict()
    converged(v, groups)
    med = summarize([100 * r.median_single_increase for r in res])
    v.check(f"{names[0]}: median increase for deleting one block {med} points (≤ {SMALL:g})", med.mean <= SMALL)
    halfway, medians = [], []
    for r in plain:
        same = ~r.downsampling & np.isfinite(r.single_error)
        base, median = 100 * r.baseline_error, 100 * float(np.median(r.single_error[same]))
        halfway.append((median - base) / max(CHANCE_10 - base, 1e-9))
        medians.append(median)
    hw = summarize(halfway)
    v.check(
        f"{names[1]}: median single deletion {summarize(medians)}% error, {hw.mean:.0%} of the way from its "
        f"baseline {summarize([100 * r.baseline_error for r in plain])}% to chance (≥ {HALFWAY:.0%})",
        hw.mean >= HALFWAY,
    )
    smooth_check(v, names[0], res)
    return v


def figures(res: list[LesionResult], plain: list[LesionResult], names: tuple[str, str]) -> list[FigureSpec]:
    return [
        *single_deletion_figures([(names[0], res), (names[1], plain)]),
        k_figure([(names[0], res)]),
        FigureSpec(
            "lines",
            "Reordering by k random swaps",
            "Kendall τ of the block order",
            "test error (%)",
            series=[
                Series(
                    names[0],
                    mean_over([r.reorder_tau.mean(axis=1) for r in res]),
                    mean_over([100 * r.reorder_error.mean(axis=1) for r in res]),
                    None,
                    "solid+markers",
                )
            ],
            panel="k",
        ),
    ]


def single_deletion_figures(nets: Sequence[tuple[str, list[LesionResult]]]) -> list[FigureSpec]:
    """Veit2016 Fig. 3: test error with each block deleted. Nets of one architecture share one bar
    chart (a bar group per block); nets of different lengths get a panel each, side by side."""
    if len({rs[0].num_blocks for _, rs in nets}) == 1:
        return [_deletion_bars("Test error after deleting one block", nets)]
    return [_deletion_bars(f"{name}: one block deleted", [(name, rs)], panel="single") for name, rs in nets]


def _deletion_bars(title: str, nets: Sequence[tuple[str, list[LesionResult]]], panel: str = "") -> FigureSpec:
    n = nets[0][1][0].num_blocks
    series, hlines = [], []
    for name, rs in nets:
        rows = [100 * r.single_error for r in rs]
        series.append(Series(name, list(range(n)), mean_over(rows), std_over(rows)))
        hlines.append({"y": float(np.mean([100 * r.baseline_error for r in rs])), "label": f"{name}, nothing deleted"})
    hlines = hlines if len(nets) == 1 else hlines[:1]  # one baseline line is readable; the rest are in the numbers
    return FigureSpec(
        "bars",
        title,
        "deleted block",
        "test error (%)",
        series,
        categories=[str(i) for i in range(n)],
        hlines=[*hlines, {"y": CHANCE_10, "label": "chance"}],
        marks=[float(i) for i in np.flatnonzero(nets[0][1][0].downsampling)],
        caption="Shaded: blocks that change the shape." if nets[0][1][0].downsampling.any() else "",
        panel=panel,
    )


def k_figure(nets: Sequence[tuple[str, list[LesionResult]]]) -> FigureSpec:
    """Veit2016 Fig. 5a: test error against the number of randomly deleted blocks."""
    series = []
    for name, rs in nets:
        rows = [100 * r.delete_error.mean(axis=1) for r in rs]
        series.append(
            Series(name, [float(k) for k in rs[0].delete_k], mean_over(rows), std_over(rows), "solid+markers")
        )
    return FigureSpec("lines", "Deleting k random blocks", "blocks deleted (k)", "test error (%)", series, panel="k")


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    groups = degradation.trained(ctx, s.nets, nets(s))
    net, plain_net = (groups[degradation.label(kind, depth)] for kind, depth in nets(s))
    names = (net.label, plain_net.label)
    res = lesions(ctx, s.lesions, net.records, "resnet", random_k=True)
    plain = lesions(ctx, s.lesions, plain_net.records, "plain", random_k=False)
    med = summarize([100 * r.median_single_increase for r in res])
    plain_med = summarize([100 * float(np.nanmedian(r.single_error[~r.downsampling])) for r in plain])
    numbers = {
        f"{names[0]} baseline test error %": summarize([100 * r.baseline_error for r in res]).to_dict(),
        f"{names[0]} median single-deletion increase (points)": med.to_dict(),
        f"{names[0]} worst non-downsampling deletion %": summarize(
            [100 * r.max_single_error_same_shape for r in res]
        ).to_dict(),
        f"{names[1]} baseline test error %": summarize([100 * r.baseline_error for r in plain]).to_dict(),
        f"{names[1]} median single-deletion error %": plain_med.to_dict(),
    }
    n = res[0].num_blocks
    return STUDY.result(
        ctx,
        judge(res, plain, [net, plain_net], names),
        numbers=numbers,
        key_number=f"delete one block: {names[0]} {med.mean:+.1f} points (median), {names[1]} → {plain_med.mean:.0f}%",
        figures=figures(res, plain, names),
        setup={
            "models": f"the degradation study's {names[0]} and {names[1]} ({len(ctx.seeds)} seeds each)",
            "data": f"{s.lesions.test_size or 'all'} test images",
            "lesions": f"every block; in {names[0]} also k random deletions and k random swaps of same-shape "
            f"blocks, k = 1…{n // 2} in steps of {s.lesions.k_step}, {s.lesions.draws} draws each",
        },
        runs=[r.id for g in (net, plain_net) for r in g.records],
    )


def mean_over(rows: list) -> list[float]:
    return [float(v) for v in np.nanmean(np.array(rows, dtype=float), axis=0)]


def std_over(rows: list) -> list[float]:
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
    plan=plan,
    order=70,
)
