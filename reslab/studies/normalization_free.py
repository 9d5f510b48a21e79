"""normalization-free — the residual structure, scaled right, trains deep nets without BatchNorm.

BatchNorm is not what makes a deep residual net trainable: at initialization it shrinks
every branch relative to the skip path (De2020), so each block starts close to the
identity. Three normalization-free designs do the same by construction: Fixup (Zhang2019)
rescales the branch initialization and zeroes each branch's last layer, SkipInit (De2020)
and ReZero (Bachlechner2020) multiply each branch by a learned scalar that starts at 0.
A deep plain net without BN has nothing of the kind. Compared at the degradation study's
deepest depth, against its BN residual net (the same runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..train import TrainConfig
from . import degradation
from .base import Study, StudyContext
from .common import recipe_text
from .results import StudyResult
from .stats import greater
from .trained import Group, converged, convergence_rule, group_bars, group_curves, group_numbers, train_groups
from .verdict import Verdict

ALPHA = 0.05
CLOSE = 5.0  # points: "close to the BN ResNet"
FAILS = 50.0  # % training error: "fails"
CLAIM = (
    "Without BatchNorm a deep plain net fails to train or trains far worse, while Fixup, SkipInit and "
    "ReZero residual nets without any normalization train close to the BN residual net."
)
RULE = (
    "Final training error (eval mode, fixed training subset; a diverged run counts as 90%) at the degradation "
    f"study's deepest depth, same recipe. Precondition: every net {convergence_rule()}. Holds "
    f"when (1) the plain net without BN fails (> {FAILS:g}%) or is significantly worse than the BN residual net by "
    f"more than {CLOSE:g} points (one-sided Welch t-test, p < {ALPHA}), and (2) each of Fixup, SkipInit and ReZero "
    f"is within {CLOSE:g} points of the BN residual net (mean over seeds)."
)
ANCHORS = {
    "source": "Zhang2019 (Fixup) Table 2; De2020 (SkipInit); Bachlechner2020 (ReZero) — CIFAR-10 test error %",
    "Fixup ResNet-110 (no normalization)": "7.24 (BN ResNet-110: 6.61)",
    "SkipInit": "trains 1000-layer ResNets without normalization",
    "ReZero": "converges faster than the BN/LN baselines at depth",
}
VARIANTS = {  # label -> model options added to the degradation study's deepest residual net
    # Fixup's rule is written for the original unit (add, then ReLU), whatever order the BN net uses
    "Fixup, no BN": {"norm": "none", "scalar": "fixup", "order": "post"},
    "SkipInit, no BN": {"norm": "none", "scalar": "skipinit"},
    "ReZero, no BN": {"norm": "none", "scalar": "rezero"},
}
PLAIN_NO_BN = {"norm": "none"}


@dataclass(frozen=True)
class Settings:
    nets: degradation.Settings  # the degradation study's nets and recipe at the same scale


SETTINGS = {scale: Settings(nets) for scale, nets in degradation.SETTINGS.items()}


def planned(s: Settings, seeds: Sequence[int]) -> dict[str, list[TrainConfig]]:
    deg = s.nets
    deep = deg.depths[-1]
    out = {f"{k}-{deep}": degradation.configs(deg, seeds, "resnet", deep, **o) for k, o in VARIANTS.items()}
    out[f"plain, no BN-{deep}"] = degradation.configs(deg, seeds, "plain", deep, **PLAIN_NO_BN)
    return out


def judge(groups: dict[str, Group], bn: Group, plain: Group) -> Verdict:
    v = Verdict()
    converged(v, [bn, plain, *groups.values()])  # closeness is two-sided: every net could overturn a check
    t = greater(plain.final(), bn.final())
    gap = plain.summary().mean - bn.summary().mean
    fails = plain.summary().mean > FAILS
    v.check(
        f"{plain.label} {plain.text()} vs {bn.label} (BN) {bn.text()}: "
        + ("fails" if fails else f"{gap:+.1f} points (p = {t.p:.3g})"),
        fails or (None if t.outcome(ALPHA) is None else bool(t.outcome(ALPHA) and gap > CLOSE)),
    )
    for g in groups.values():
        diff = g.summary().mean - bn.summary().mean
        v.check(f"{g.label} {g.text()}: {diff:+.1f} points from the BN net (within {CLOSE:g})", abs(diff) <= CLOSE)
    return v


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    bn = degradation.plan(s.nets, seeds, degradation.deepest_resnet(s.nets))
    return bn + [c for configs in planned(s, seeds).values() for c in configs]


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    deg = s.nets
    deep = deg.depths[-1]
    (bn,) = degradation.trained(ctx, deg, degradation.deepest_resnet(deg)).values()
    runs = train_groups(ctx, planned(s, ctx.seeds))
    plain = runs.pop(f"plain, no BN-{deep}")
    ordered = [bn, *runs.values(), plain]
    return STUDY.result(
        ctx,
        judge(runs, bn, plain),
        numbers=group_numbers(ordered),
        key_number=f"depth {deep}, train err: BN {bn.summary().mean:.1f}%, "
        + ", ".join(f"{g.label.split(',')[0]} {g.summary().mean:.1f}%" for g in runs.values())
        + f", plain no BN {plain.summary().mean:.1f}%",
        figures=[
            group_curves(f"Training without normalization, depth {deep}", ordered),
            group_bars("Final training and test error", ordered),
        ],
        setup={
            "models": f"the degradation study's deepest nets ({degradation.describe_nets(deg)}) with BN, and "
            "without any normalization as Fixup, SkipInit, ReZero and plain",
            "data": f"{deg.data}, {deg.data_options}",
            "seeds": ctx.seeds,
            "recipe": recipe_text(deg.recipe),
        },
        runs=[r.id for g in ordered for r in g.records],
    )


STUDY = Study(
    id="normalization-free",
    title="Scaled residual nets train without normalization (Fixup, SkipInit, ReZero)",
    claim=CLAIM,
    sources=["Zhang2019", "De2020", "Bachlechner2020"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=160,
    part="beyond",
)
