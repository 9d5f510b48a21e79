"""activation-variants — He2016 Table 2: pre-activation keeps the shortcut path clean.

Where BN and ReLU sit in a unit decides whether the signal x_l reaches x_L untouched.
After the addition (BN after addition, or ReLU in the original unit) they sit on the
shortcut path itself; in the full pre-activation unit the path is a clean identity.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..train import TrainConfig
from ..train.recipe import Recipe, get_recipe
from .base import Study, StudyContext
from .mlp_standin import StandIn, VariantSettings
from .results import StudyResult
from .stats import greater
from .trained import Group, converged, convergence_rule, group_bars, group_numbers, train_groups
from .verdict import Verdict

ALPHA = 0.05
CLAIM = (
    "Of He2016's five unit orders, BN after the addition trains worst and full pre-activation "
    "trains at least as well as the original unit."
)
RULE = (
    "Final training error (eval mode, fixed training subset; a diverged run counts as 90%), mean over seeds. "
    f"Precondition: BN after addition and the original unit, whose further training could overturn (1) and (2), "
    f"{convergence_rule()}. "
    "Holds when (1) BN-after-addition has the highest mean training error of the five units (ties allowed), "
    f"and (2) full pre-activation is not significantly worse than the original unit (one-sided Welch t-test, "
    f"p ≥ {ALPHA})."
)
ANCHORS = {
    "source": "He2016 Table 2 (CIFAR-10 test error %, ResNet-110 / ResNet-164)",
    "original test error %": "6.61 / 5.93",
    "BN after addition test error %": "8.17 / 6.50",
    "ReLU before addition test error %": "7.84 / 6.14",
    "ReLU-only pre-activation test error %": "6.71 / 5.91",
    "full pre-activation test error %": "6.37 / 5.46",
}
ORDERS = {  # order -> label as in He2016 Fig. 4
    "post": "original",
    "bn-after-add": "BN after addition",
    "relu-before-add": "ReLU before addition",
    "relu-preact": "ReLU-only pre-activation",
    "preact": "full pre-activation",
}

# Width 64 halves a step of 128's cost (matmul-bound on one core); which variants that leaves
# unconverged, at either width, is in the README's "what does not reproduce".
QUICK_STANDIN = StandIn(
    units=20,
    width=64,
    recipe=Recipe(lr=0.1, steps=1000, batch_size=128, schedule="wsd"),
    data_options={"train_size": 500, "val_size": 1000, "test_size": 2000, "image_size": 14},
    eval_train_size=500,
)
SETTINGS = {
    "smoke": VariantSettings(
        StandIn(
            4,
            16,
            Recipe(lr=0.1, steps=6, batch_size=32, schedule="wsd"),
            {"train_size": 256, "val_size": 128, "test_size": 128, "image_size": 7},
            128,
            1,
        )
    ),
    "quick": VariantSettings(QUICK_STANDIN),
    # ResNet-110: He2015 Sec. 4.2 (and He2016 after it) warms up at 0.01 until the training error is below 80%
    "full": VariantSettings(paper_recipe=get_recipe("he2015_cifar_warmup")),
}


def plan(s: VariantSettings, seeds: Sequence[int]) -> list[TrainConfig]:
    return [c for order in ORDERS for c in s.configs({"order": order}, seeds)]


def judge(groups: dict[str, Group]) -> Verdict:
    v = Verdict()
    decisive = [groups["bn-after-add"], groups["post"]]  # could overturn (1) and (2) by training further
    converged(v, decisive, [g for k, g in groups.items() if k not in ("bn-after-add", "post")])
    mean = {o: g.summary().mean for o, g in groups.items()}
    worst = max(mean.values())
    v.check(
        f"BN after addition {groups['bn-after-add'].text()} is the worst "
        f"(highest: {', '.join(ORDERS[o] for o, m in mean.items() if m == worst)} at {worst:.1f}%)",
        mean["bn-after-add"] >= worst,
    )
    worse = greater(groups["preact"].final(), groups["post"].final())
    outcome = worse.outcome(ALPHA)
    v.check(
        f"full pre-activation {groups['preact'].text()} is not significantly worse than the original "
        f"{groups['post'].text()} (p = {worse.p:.3g})",
        None if outcome is None else not outcome,
    )
    return v


def analyze(ctx: StudyContext, s: VariantSettings) -> StudyResult:
    groups = train_groups(ctx, {order: s.configs({"order": order}, ctx.seeds) for order in ORDERS})
    for order, g in groups.items():
        g.label = ORDERS[order]  # keys below match the anchors', so the report pairs them
    numbers = group_numbers(groups.values())
    mean = {o: g.summary().mean for o, g in groups.items()}
    figure = group_bars(
        "Training and test error by unit order (He2016 Table 2)",
        list(groups.values()),
        hlines=[{"y": 90.0, "label": "chance / diverged"}],
    )
    return STUDY.result(
        ctx,
        judge(groups),
        numbers=numbers,
        key_number=f"train err: full pre-act {mean['preact']:.1f}%, original {mean['post']:.1f}%, "
        f"BN after add {mean['bn-after-add']:.1f}%",
        figures=[figure],
        setup=s.setup(ctx.seeds, "CIFAR ResNet-110 (option A) with each unit order"),
        runs=[r.id for g in groups.values() for r in g.records],
    )


STUDY = Study(
    id="activation-variants",
    title="Pre-activation keeps the shortcut path clean (He2016 Table 2)",
    claim=CLAIM,
    sources=["He2016"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=60,
)
