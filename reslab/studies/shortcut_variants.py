"""shortcut-variants — He2016 Table 1: anything but a clean identity shortcut hurts optimization.

With h(x_l) = λ x_l the backward signal to unit l is multiplied by Π λ_i, so scaling,
gating, projecting or dropping the shortcut obstructs the very path that makes deep
residual nets trainable. Each variant is trained with the same recipe and seeds; a run
"fails" (He2016's word) when its training error stays above a threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..train import TrainConfig
from ..train.recipe import get_recipe
from .activation_variants import QUICK_STANDIN
from .activation_variants import SETTINGS as ACTIVATION_SETTINGS
from .base import Study, StudyContext
from .mlp_standin import VariantSettings
from .results import StudyResult
from .stats import greater
from .trained import Group, converged, convergence_rule, group_bars, group_numbers, train_groups
from .verdict import Verdict

ALPHA = 0.05
CLAIM = (
    "Among He2016's shortcut variants the clean identity trains best; constant scaling and dropout "
    "on the shortcut fail or train clearly worse."
)
FAIL_AT = 50.0  # % training error at the end above which a run "fails" (He2016 Table 1's "fail")
RULE = (
    "Final training error (eval mode, fixed training subset; a diverged run counts as 90%). Precondition: "
    "every variant but the identity, whose further training could overturn a check, "
    f"{convergence_rule()}. Holds when "
    "(1) no variant reaches a significantly lower training error than the identity shortcut (one-sided "
    f"Welch t-test over seeds, p < {ALPHA}), and (2) constant scaling (λ = 0.5) and dropout (0.5) on the "
    f"shortcut each either fail (mean training error > {FAIL_AT:.0f}%) or are significantly worse than "
    "the identity."
)
ANCHORS = {
    "source": "He2016 Table 1 (CIFAR-10 test error %, ResNet-110)",
    "identity test error %": 6.61,
    "constant scaling 0.5 test error %": "fail (0.5 on both paths: 12.35)",
    "exclusive gate, b = -6 test error %": "8.70 (fail for b = 0 … −5)",
    "shortcut-only gate, b = 0 test error %": 12.86,
    "shortcut-only gate, b = -6 test error %": 6.91,
    "1x1 conv shortcut test error %": 12.22,
    "dropout 0.5 test error %": "fail",
}
# variant -> (label, block options: the same words for the stand-in MLP and the CIFAR ResNet). He2016's
# Table 1 varies the shortcut of the original (post-activation) unit; its identity run is the
# activation-variants study's "original" run
POST = {"order": "post"}
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "identity": ("identity", POST),
    "scale": ("constant scaling 0.5", {**POST, "shortcut": "scale", "shortcut_scale": 0.5}),
    "exclusive-gate": ("exclusive gate, b = -6", {**POST, "shortcut": "exclusive-gate", "gate_bias": -6.0}),
    "shortcut-gate-0": ("shortcut-only gate, b = 0", {**POST, "shortcut": "shortcut-gate", "gate_bias": 0.0}),
    "shortcut-gate-6": ("shortcut-only gate, b = -6", {**POST, "shortcut": "shortcut-gate", "gate_bias": -6.0}),
    "conv": ("1x1 conv shortcut", {**POST, "shortcut": "projection"}),
    "dropout": ("dropout 0.5", {**POST, "shortcut": "dropout", "shortcut_dropout": 0.5}),
}
# the stand-in of activation-variants, so the identity runs are shared
SETTINGS = {
    "smoke": ACTIVATION_SETTINGS["smoke"],
    "quick": VariantSettings(QUICK_STANDIN),
    # ResNet-110: He2015 Sec. 4.2 (and He2016 after it) warms up at 0.01 until the training error is below 80%
    "full": VariantSettings(paper_recipe=get_recipe("he2015_cifar_warmup")),
}


def plan(s: VariantSettings, seeds: Sequence[int]) -> list[TrainConfig]:
    return [c for _, options in VARIANTS.values() for c in s.configs(options, seeds)]


def judge(groups: dict[str, Group]) -> Verdict:
    v = Verdict()
    converged(v, [g for k, g in groups.items() if k != "identity"], [groups["identity"]])  # could overturn (1), (2)
    identity = groups["identity"]
    better = {k: greater(identity.final(), g.final()) for k, g in groups.items() if k != "identity"}
    beaten = [k for k, c in better.items() if c.outcome(ALPHA)]
    undecided = any(c.outcome(ALPHA) is None for c in better.values())
    v.check(
        f"identity {identity.text()}: no variant significantly lower"
        + (f" (lower: {', '.join(groups[k].label for k in beaten)})" if beaten else ""),
        None if undecided and not beaten else not beaten,
    )
    for k in ("scale", "dropout"):
        g = groups[k]
        failed = g.summary().mean > FAIL_AT
        worse = greater(g.final(), identity.final()).outcome(ALPHA)
        ok = failed or worse
        v.check(
            f"{g.label} {g.text()}: " + ("fails" if failed else f"worse than identity: {worse}"),
            ok if ok is not None else None,
        )
    return v


def analyze(ctx: StudyContext, s: VariantSettings) -> StudyResult:
    groups = train_groups(ctx, {k: s.configs(options, ctx.seeds) for k, (_, options) in VARIANTS.items()})
    for k, g in groups.items():
        g.label = VARIANTS[k][0]  # keys below match the anchors', so the report pairs them
    numbers = group_numbers(groups.values())
    numbers |= {f"{g.label} fails": g.summary().mean > FAIL_AT for g in groups.values()}
    mean = {k: g.summary().mean for k, g in groups.items()}
    figure = group_bars(
        "Training and test error by shortcut (He2016 Table 1)",
        list(groups.values()),
        hlines=[{"y": FAIL_AT, "label": "fail threshold"}],
    )
    return STUDY.result(
        ctx,
        judge(groups),
        numbers=numbers,
        key_number=f"train err: identity {mean['identity']:.1f}%, scaling {mean['scale']:.1f}%, "
        f"dropout {mean['dropout']:.1f}%",
        figures=[figure],
        setup=s.setup(ctx.seeds, "CIFAR ResNet-110 with each shortcut"),
        runs=[r.id for g in groups.values() for r in g.records],
    )


STUDY = Study(
    id="shortcut-variants",
    title="Anything but a clean identity shortcut hurts (He2016 Table 1)",
    claim=CLAIM,
    sources=["He2016"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=50,
)
