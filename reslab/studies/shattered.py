"""shattered — plain nets' gradients turn into white noise with depth; residual nets keep them
correlated (Balduzzi2017).

The gradient of a net's output with respect to a 1-D input, over a grid of inputs, is a
smooth "brown noise" curve for a shallow net. With depth a feedforward net's curve
decorrelates into white noise, so gradient steps stop generalising across nearby inputs;
a residual net's stays correlated. Measured at initialization, many seeds per family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..probes import ShatteredResult, shattered_gradients
from ..probes.shattered import FAMILIES
from .base import Study, StudyContext
from .results import FigureSpec, Series, StudyResult
from .verdict import Verdict

CLAIM = (
    "At depth 50 a feedforward ReLU net's input gradient is white noise while a residual net's stays "
    "correlated across neighbouring inputs."
)
WHITE_CORR, WHITE_SLOPE = 0.2, -0.5  # white noise: |neighbour correlation| below, spectrum slope above
BROWN_CORR, BROWN_SLOPE = 0.5, -1.0  # correlated ("brownish"): neighbour correlation above, slope below
RULE = (
    "Gradients d(output)/d(input) on 256 grid points in [−2, 2] at initialization, BatchNorm statistics "
    "of the grid held fixed, mean over seeds. Holds when at the deepest depth (1) the feedforward + BN "
    f"net is white: |neighbour correlation| < {WHITE_CORR:g} and power-spectrum slope > {WHITE_SLOPE:g}, and (2) "
    f"the residual + BN net is not: neighbour correlation > {BROWN_CORR:g} and slope < {BROWN_SLOPE:g}."
)
ANCHORS = {
    "source": "Balduzzi2017 Fig. 1-3 and Theorems 1-3",
    "feedforward ReLU nets": "correlation decays like 2^-L (white noise by depth ~20)",
    "residual nets with BN": "correlation decays like L^-1/2",
    "shallow nets": "brown noise, spectrum slope ≈ −2",
}


@dataclass(frozen=True)
class Settings:
    max_depth: int
    points: int = 256
    width: int = 200


SETTINGS = {
    "smoke": Settings(max_depth=6, points=64, width=32),
    "quick": Settings(max_depth=50),
    "full": Settings(max_depth=50),
}
SEEDS = {"smoke": 4, "quick": 16, "full": 64}  # random nets per family (no training involved)


def judge(r: ShatteredResult) -> Verdict:
    deep = int(r.depths[-1])
    ff, res = r.at("ff-bn", deep), r.at("res-bn", deep)
    v = Verdict()
    v.check(
        f"feedforward + BN at depth {deep}: neighbour correlation {ff['lag1']:.2f}, slope {ff['slope']:.2f} "
        f"(white: |corr| < {WHITE_CORR:g}, slope > {WHITE_SLOPE:g})",
        abs(ff["lag1"]) < WHITE_CORR and ff["slope"] > WHITE_SLOPE,
    )
    v.check(
        f"residual + BN at depth {deep}: neighbour correlation {res['lag1']:.2f}, slope {res['slope']:.2f} "
        f"(correlated: corr > {BROWN_CORR:g}, slope < {BROWN_SLOPE:g})",
        res["lag1"] > BROWN_CORR and res["slope"] < BROWN_SLOPE,
    )
    return v


def curve_figures(r: ShatteredResult) -> list[FigureSpec]:
    """Balduzzi2017 Fig. 1: one net's gradient curve per family and depth, each divided by its
    root mean square, so the shape (brown vs white noise) shows whatever the gradient's scale."""
    grid = [float(x) for x in r.grid]
    out = []
    for k, d in enumerate(r.detail_depths):
        series = []
        for family, name in (("ff-bn", "feedforward + BN"), ("res-bn", "residual + BN")):
            curve = r.curves[r.families.index(family), k, 0]
            rms = float(np.sqrt(np.mean(curve**2))) or 1.0
            series.append(Series(name, grid, [float(x) / rms for x in curve]))
        caption = "Each curve divided by its root mean square (scales differ by orders of magnitude)." if k == 0 else ""
        out.append(
            FigureSpec(
                "lines",
                f"Gradient at depth {d}",
                "input x",
                "gradient / its RMS",
                series,
                panel="curves",
                caption=caption,
            )
        )
    return out


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    r: ShatteredResult = shattered_gradients(
        max_depth=s.max_depth, seeds=len(ctx.seeds), first_seed=ctx.seeds[0], points=s.points, width=s.width
    )
    r.save(ctx.data_path("shattered"))
    deep = int(r.depths[-1])
    ff, res = r.at("ff-bn", deep), r.at("res-bn", deep)
    v = judge(r)
    depths = [float(d) for d in r.depths]
    label = {f: FAMILIES[f].description for f in r.families}
    corr = [
        Series(label[f], depths, [float(x) for x in r.lag1[i]], [float(x) for x in r.lag1_std[i]])
        for i, f in enumerate(r.families)
    ]
    for i, f in enumerate(r.families):
        if np.isfinite(r.theory[i]).any() and FAMILIES[f].theory != "1":
            corr.append(
                Series(f"theory {FAMILIES[f].theory} ({f})", depths, [float(x) for x in r.theory[i]], style="dotted")
            )
    fi, ri = r.families.index("ff-bn"), r.families.index("res-bn")
    deep_k = len(r.detail_depths) - 1
    figures = [
        *curve_figures(r),
        FigureSpec(
            "images",
            f"Gradient covariance over seeds at depth {int(r.detail_depths[deep_k])}",
            "input",
            "input",
            matrices=[r.covariance[fi, deep_k].tolist(), r.covariance[ri, deep_k].tolist()],
            panel_titles=["feedforward + BN", "residual + BN"],
        ),
        FigureSpec("lines", "Neighbour correlation of the gradient vs depth", "depth", "lag-1 correlation", corr),
        FigureSpec(
            "lines",
            "Power-spectrum slope vs depth (brown −2, white 0)",
            "depth",
            "slope",
            [Series(label[f], depths, [float(x) for x in r.slope[i]]) for i, f in enumerate(r.families)],
            hlines=[{"y": -2.0, "label": "brown"}, {"y": 0.0, "label": "white"}],
        ),
    ]
    numbers = {}
    for f in r.families:
        for d in sorted({1, 8, 24, deep} & set(int(x) for x in r.depths)):
            at = r.at(f, d)
            numbers[f"{f} depth {d}: neighbour corr / slope"] = [round(at["lag1"], 3), round(at["slope"], 2)]
        fit = r.fits.get(f, {})
        if fit:
            numbers[f"{f} decay fit"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in fit.items()}
    numbers["probe seconds"] = round(r.total_seconds, 1)
    return STUDY.result(
        ctx,
        v,
        numbers=numbers,
        key_number=f"neighbour corr at depth {deep}: feedforward {ff['lag1']:.2f}, residual {res['lag1']:.2f}",
        figures=figures,
        setup={
            "models": ", ".join(f"{f} ({label[f]})" for f in r.families) + f"; width {s.width}",
            "data": f"{s.points} points in [−2, 2]",
            "seeds": f"{len(ctx.seeds)} random nets per family (seeds {ctx.seeds[0]}–{ctx.seeds[-1]})",
            "definitions": "depth-d curve = gradient of the depth-d prefix of a depth-"
            f"{s.max_depth} net; BN statistics of the grid held fixed",
        },
    )


STUDY = Study(
    id="shattered",
    title="Shattered gradients (Balduzzi2017)",
    claim=CLAIM,
    sources=["Balduzzi2017"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    default_seeds=SEEDS,
    order=90,
)
