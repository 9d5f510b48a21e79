"""stochastic-depth — training on short paths makes the ensemble explicit (Huang2016, Veit2016 Sec. 5).

Stochastic depth drops each residual branch at random while training (block l of L with
probability p·l/L), so the net learns to work with any of its blocks missing: the ensemble
of paths that Veit2016 find in every ResNet becomes what it is trained for. Its blocks can
then be deleted at test time with even less harm than a normally trained ResNet's.
Compared with the degradation study's deepest residual net, by the lesion study's probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..probes import LesionResult
from ..train import TrainConfig
from . import degradation, lesion
from .base import Study, StudyContext
from .common import recipe_text
from .results import StudyResult
from .stats import greater, summarize
from .trained import converged, convergence_rule, group_numbers, train_groups
from .verdict import Verdict

ALPHA = 0.05
CLAIM = (
    "A residual net trained with stochastic depth loses less when blocks are deleted at test time than the "
    "same net trained normally, for single deletions and for several at once."
)
RULE = (
    "Test error after deleting blocks at test time, on the degradation study's deepest residual net trained "
    "normally and with drop-path (linear decay to p_L at the last block). Precondition: both "
    f"{convergence_rule()}. Holds when (1) the median increase over single deletions of non-downsampling blocks "
    f"is smaller with drop-path, and (2) so is the mean increase over k random deletions (each a one-sided Welch "
    f"t-test over seeds, p < {ALPHA})."
)
ANCHORS = {
    "source": "Veit2016 Sec. 5, Fig. 3b (CIFAR-10 test error %, ResNet-110)",
    "stochastic-depth ResNet-110, any single deletion": "≤ 6.88 (normal ResNet: up to 7.2, downsampling 12.2)",
    "Huang2016 survival": "p_L = 0.5, linear decay",
}


@dataclass(frozen=True)
class Settings:
    nets: degradation.Settings  # the degradation study's nets and recipe (at quick scale wider: below)
    lesions: lesion.Lesions
    drop_path: float = 0.5  # p_L: the last block's drop probability (Huang2016)


SETTINGS = {
    scale: Settings(degradation.SETTINGS[scale], lesion.SETTINGS[scale].lesions) for scale in degradation.SETTINGS
}
# At quick scale 128 wide, not the degradation study's 64: one deletion barely hurts the normally trained
# 64-wide ResNet-56, and the single-deletion comparison then passed or failed by cell (README, "what does
# not reproduce").
SETTINGS["quick"] = replace(SETTINGS["quick"], nets=replace(degradation.SETTINGS["quick"], widths=(128,)))


def configs(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return degradation.configs(s.nets, seeds, "resnet", s.nets.depths[-1], drop_path=s.drop_path)


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    """The drop-path nets and the degradation study's deepest ResNet, trained normally (the same runs
    where the widths agree, shared through the store; this study trains more seeds)."""
    return degradation.plan(s.nets, seeds, degradation.deepest_resnet(s.nets)) + configs(s, seeds)


def increases(results: Sequence[LesionResult]) -> tuple[list[float], list[float]]:
    """Per seed: the median single-deletion increase, and the mean increase over the k-deletion curve (points)."""
    single = [100 * r.median_single_increase for r in results]
    k_mean = [100 * float(np.mean(r.delete_error.mean(axis=1) - r.baseline_error)) for r in results]
    return single, k_mean


def judge(normal: list[LesionResult], dropped: list[LesionResult], groups) -> Verdict:
    v = Verdict()
    converged(v, groups)
    (s_n, k_n), (s_d, k_d) = increases(normal), increases(dropped)
    for what, a, b in (("median single-deletion increase", s_d, s_n), ("mean increase over k deletions", k_d, k_n)):
        t = greater(b, a)
        v.check(f"{what}: drop-path {summarize(a)} < normal {summarize(b)} points (p = {t.p:.3g})", t.outcome(ALPHA))
    return v


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    (normal_net,) = degradation.trained(ctx, s.nets, degradation.deepest_resnet(s.nets)).values()
    name = normal_net.label
    dropped_net = train_groups(ctx, {f"{name}, drop-path {s.drop_path:g}": configs(s, ctx.seeds)})
    dropped_net = next(iter(dropped_net.values()))
    normal = lesion.lesions(ctx, s.lesions, normal_net.records, "normal", random_k=True)
    dropped = lesion.lesions(ctx, s.lesions, dropped_net.records, "drop-path", random_k=True)
    numbers = group_numbers([normal_net, dropped_net])
    for label, rs in (("normal", normal), ("drop-path", dropped)):
        single, k_mean = increases(rs)
        numbers[f"{label}: median single-deletion increase (points)"] = summarize(single).to_dict()
        numbers[f"{label}: mean increase over k deletions (points)"] = summarize(k_mean).to_dict()
    nets = [(normal_net.label, normal), (dropped_net.label, dropped)]
    return STUDY.result(
        ctx,
        judge(normal, dropped, [normal_net, dropped_net]),
        numbers=numbers,
        key_number=f"delete one block: normal {summarize(increases(normal)[0]).mean:+.1f}, drop-path "
        f"{summarize(increases(dropped)[0]).mean:+.1f} points (median)",
        figures=[*lesion.single_deletion_figures(nets), lesion.k_figure(nets)],
        setup={
            "models": f"{degradation.describe_nets(s.nets)}: {name}, trained normally and with drop-path "
            f"p_L = {s.drop_path:g}",
            "data": f"{s.lesions.test_size or 'all'} test images",
            "seeds": ctx.seeds,
            "recipe": recipe_text(s.nets.recipe),
        },
        runs=[r.id for g in (normal_net, dropped_net) for r in g.records],
    )


STUDY = Study(
    id="stochastic-depth",
    title="Stochastic depth makes the ensemble explicit (Huang2016, Veit2016)",
    claim=CLAIM,
    sources=["Huang2016", "Veit2016"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=150,  # before normalization-free: the catalogue ends on short runs, not on this study's lesion probe
    part="beyond",
    # single deletions barely hurt either quick net (under half a point of 1,000 test images): with 3 seeds the
    # single-deletion test missed p < 0.05 on one seed set, in the same direction as on every other
    default_seeds={"smoke": 1, "quick": 6, "full": 3},
)
