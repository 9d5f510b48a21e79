"""landscape — skip connections make the loss surface smooth (Li2018).

Li2018 plot the loss around a trained net along two random directions, each scaled filter
by filter to the weights it perturbs (so nets of any scale compare), and find that
without skip connections the surface turns chaotic as the net gets deeper, while the
residual net of the same depth stays smooth and nearly convex. Measured on the degradation
study's trained nets (the same runs), with roughness as the share of grid points where the
surface curves downward along either axis (negative curvature: a convex bowl has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..probes import LandscapeResult, loss_plane
from ..train import TrainConfig
from . import degradation
from .base import Study, StudyContext
from .common import eval_data
from .results import FigureSpec, Series, StudyResult
from .stats import fmt, greater, summarize
from .trained import Group, converged
from .verdict import Verdict

ALPHA = 0.05
CLAIM = (
    "Around a trained net, the loss surface of a deep plain net is rough while that of the residual net of the "
    "same depth is smooth: the deep plain net's is the roughest of the four nets."
)
RULE = (
    "Filter-normalized 2-D loss surfaces (Li2018; BN and bias directions zero, BN in eval mode) around each of the "
    "degradation study's converged nets (its precondition), on a fixed training subset; roughness = share of grid "
    "points with negative curvature along either axis, mean over seeds. Holds when (1) the deepest plain net's "
    "roughness is the highest of the four nets, and (2) it is significantly above the residual net's of the same "
    f"depth (one-sided Welch t-test, p < {ALPHA})."
)
ANCHORS = {
    "source": "Li2018 Fig. 5 and Table 2 (CIFAR-10 test error %, with / without skip connections)",
    "ResNet-20 / plain-20": "7.37 / 8.18",
    "ResNet-56 / plain-56": "5.89 / 13.31",
    "ResNet-110 / plain-110": "5.79 / 16.44",
    "surfaces": "without skips: chaotic from depth 56 on; with skips: smooth and nearly convex",
}


@dataclass(frozen=True)
class Settings:
    nets: degradation.Settings  # the degradation study's nets at the same scale
    steps: int  # grid points per axis
    span: float = 1.0  # the grid covers [-span, span] along both directions
    samples: int = 500  # training images the loss is evaluated on
    hessian_iters: int = 0  # > 0: also the Hessian's extreme eigenvalues at the centre (costly)


SETTINGS = {
    "smoke": Settings(degradation.SETTINGS["smoke"], steps=5, samples=64),
    "quick": Settings(degradation.SETTINGS["quick"], steps=13, samples=500),
    "full": Settings(degradation.SETTINGS["full"], steps=31, samples=2000, hessian_iters=20),
}


def surfaces(ctx: StudyContext, s: Settings, groups: dict[str, Group]) -> dict[str, list[LandscapeResult]]:
    out = {}
    for name, group in groups.items():
        out[name] = []
        for seed, record in zip(ctx.seeds, group.records):
            x, y = eval_data(record.config, "train", s.samples)
            r = loss_plane(
                record.load_model(),
                x,
                y,
                steps=s.steps,
                span=s.span,
                seed=seed,
                hessian_iters=s.hessian_iters,
                resume=ctx.data_path(f"{name}-seed{seed}-grid.npz"),
            )
            r.save(ctx.data_path(f"{name}-seed{seed}"))
            out[name].append(r)
    return out


def roughness(results: list[LandscapeResult]) -> list[float]:
    return [r.negative_curvature_share for r in results]


def judge(found: dict[str, list[LandscapeResult]], groups: dict[str, Group], s: Settings) -> Verdict:
    deep = s.nets.depths[-1]
    plain, res = degradation.label("plain", deep), degradation.label("resnet", deep)
    v = Verdict()
    converged(v, groups.values())
    mean = {k: summarize(roughness(rs)).mean for k, rs in found.items()}
    roughest = max(mean, key=lambda k: mean[k])
    v.check(
        "roughness (negative-curvature share) "
        + ", ".join(f"{k} {m:.3f}" for k, m in mean.items())
        + f": the roughest is {roughest}",
        roughest == plain,
    )
    t = greater(roughness(found[plain]), roughness(found[res]))
    shares = {k: summarize(roughness(found[k])) for k in (plain, res)}
    v.check(
        f"{plain} {fmt(shares[plain].mean, shares[plain].std, 3)} > {res} {fmt(shares[res].mean, shares[res].std, 3)} "
        f"(p = {t.p:.3g})",
        t.outcome(ALPHA),
    )
    return v


def figures(found: dict[str, list[LandscapeResult]], s: Settings) -> list[FigureSpec]:
    first = {k: rs[0] for k, rs in found.items()}
    span = [float(s.span) * x for x in (-1, 1, -1, 1)]
    loss = [np.log10(np.maximum(r.loss, 1e-6)).tolist() for r in first.values()]
    mid = s.steps // 2
    return [
        FigureSpec(
            "images",
            "Loss surfaces (log10 loss; seed 0), one colour scale",
            "direction 1",
            "direction 2",
            matrices=loss,
            panel_titles=list(first),
            contours=True,
            extent=span,
            caption="Li2018 Fig. 5 style: filter-normalized random directions; + marks the trained weights.",
        ),
        FigureSpec(
            "lines",
            "Loss along direction 1 through the trained weights (seed 0)",
            "α",
            "loss",
            [Series(k, [float(a) for a in r.alphas], [float(v) for v in r.loss[:, mid]]) for k, r in first.items()],
            logy=True,
        ),
    ]


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return degradation.plan(s.nets, seeds)


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    groups = degradation.trained(ctx, s.nets)
    found = surfaces(ctx, s, groups)
    numbers = {
        f"{k} roughness (negative-curvature share)": summarize(roughness(rs)).to_dict() for k, rs in found.items()
    }
    numbers |= {f"{k} loss at the centre": summarize([r.origin_loss for r in rs]).to_dict() for k, rs in found.items()}
    if s.hessian_iters:
        numbers |= {
            f"{k} Hessian |min/max| eigenvalue": summarize([r.hessian_ratio for r in rs]).to_dict()
            for k, rs in found.items()
        }
    deep = s.nets.depths[-1]
    plain, res = degradation.label("plain", deep), degradation.label("resnet", deep)
    return STUDY.result(
        ctx,
        judge(found, groups, s),
        numbers=numbers,
        key_number=f"negative-curvature share: {plain} {summarize(roughness(found[plain])).mean:.3f}, "
        f"{res} {summarize(roughness(found[res])).mean:.3f}",
        figures=figures(found, s),
        setup={
            "models": f"the degradation study's nets ({degradation.describe_nets(s.nets)})",
            "data": f"{s.samples} training images",
            "grid": f"{s.steps} × {s.steps} points in [−{s.span:g}, {s.span:g}]², filter-normalized directions",
            "seeds": ctx.seeds,
        },
        runs=[r.id for g in groups.values() for r in g.records],
    )


STUDY = Study(
    id="landscape",
    title="Skip connections make the loss surface smooth (Li2018)",
    claim=CLAIM,
    sources=["Li2018"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=140,
    part="beyond",
)
