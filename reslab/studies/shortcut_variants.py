"""shortcut-variants — He2016 Table 1: anything but a clean identity shortcut hurts optimization.

With h(x_l) = λ x_l the backward signal to unit l is multiplied by Π λ_i, so scaling,
gating, projecting or dropping the shortcut obstructs the very path that makes deep
residual nets trainable. Each variant is trained with the same recipe and seeds; a run
"fails" (He2016's word) when its training error stays above a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..train import TrainConfig
from ..train.recipe import Recipe, get_recipe
from .base import Study, StudyContext
from .common import describe, error_bars, errors, run_config, summary_dict
from .mlp_standin import StandIn, variant_setup
from .results import StudyResult
from .stats import greater, summarize
from .verdict import Verdict

CLAIM = (
    "Among He2016's shortcut variants the clean identity trains best; constant scaling and dropout "
    "on the shortcut fail or train clearly worse."
)
FAIL_AT = 50.0  # % training error at the end above which a run "fails" (He2016 Table 1's "fail")
RULE = (
    "Final training error (eval mode, fixed training subset; a diverged run counts as 90%). Holds when "
    "(1) no variant reaches a significantly lower training error than the identity shortcut (one-sided "
    "Welch t-test over seeds, p < 0.05), and (2) constant scaling (λ = 0.5) and dropout (0.5) on the "
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
# variant -> (label, options for the stand-in MLP, options for the CIFAR ResNet at full scale)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "identity": ("identity", {"shortcut": "identity"}, {"shortcut": "identity"}),
    "scale": ("constant scaling 0.5", {"shortcut": "scale", "shortcut_scale": 0.5},
              {"shortcut": "scale", "shortcut_scale": 0.5}),
    "exclusive-gate": ("exclusive gate, b = -6", {"shortcut": "exclusive-gate", "gate_bias": -6.0},
                       {"shortcut": "exclusive-gate", "gate_bias": -6.0}),
    "shortcut-gate-0": ("shortcut-only gate, b = 0", {"shortcut": "shortcut-gate", "gate_bias": 0.0},
                        {"shortcut": "shortcut-gate", "gate_bias": 0.0}),
    "shortcut-gate-6": ("shortcut-only gate, b = -6", {"shortcut": "shortcut-gate", "gate_bias": -6.0},
                        {"shortcut": "shortcut-gate", "gate_bias": -6.0}),
    "conv": ("1x1 conv shortcut", {"shortcut": "projection"}, {"shortcut": "projection"}),
    "dropout": ("dropout 0.5", {"shortcut": "dropout", "shortcut_dropout": 0.5},
                {"shortcut": "dropout", "shortcut_dropout": 0.5}),
}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    standin: StandIn | None = None
    paper_recipe: Recipe | None = None


# the same stand-in as activation-variants (full pre-activation units), so the identity runs are shared
from .activation_variants import SETTINGS as _ACTIVATION  # noqa: E402

SETTINGS = {
    "smoke": Settings(_ACTIVATION["smoke"].standin),
    "quick": Settings(_ACTIVATION["quick"].standin),
    "full": Settings(paper_recipe=get_recipe("he2015_cifar")),
}


def configs(s: Settings, seeds: int, variant: str) -> list[TrainConfig]:
    _, mlp_options, cnn_options = VARIANTS[variant]
    if s.standin is not None:
        return [s.standin.config(mlp_options, seed) for seed in range(seeds)]
    return [
        run_config("resnet110", s.paper_recipe, seed, cnn_options, data="cifar10", eval_every=2000)
        for seed in range(seeds)
    ]


def plan(s: Settings, seeds: int) -> list[TrainConfig]:
    return [c for variant in VARIANTS for c in configs(s, seeds, variant)]


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    runs = {v: ctx.train(configs(s, ctx.seeds, v), VARIANTS[v][0]) for v in VARIANTS}
    train = {k: errors(r) for k, r in runs.items()}
    test = {k: errors(r, "test_error") for k, r in runs.items()}
    mean = {k: summarize(x).mean for k, x in train.items()}
    label = {k: VARIANTS[k][0] for k in VARIANTS}

    verdict = Verdict()
    better = {k: greater(train["identity"], train[k]) for k in VARIANTS if k != "identity"}
    beaten = [k for k, c in better.items() if c.outcome()]
    undecided = any(c.outcome() is None for c in better.values())
    verdict.check(
        f"identity {describe(summarize(train['identity']))}: no variant significantly lower"
        + (f" (lower: {', '.join(label[k] for k in beaten)})" if beaten else ""),
        None if undecided and not beaten else not beaten,
    )
    for k in ("scale", "dropout"):
        failed = mean[k] > FAIL_AT
        worse = greater(train[k], train["identity"])
        ok = failed or worse.outcome()
        verdict.check(
            f"{label[k]} {describe(summarize(train[k]))}: "
            + ("fails" if failed else f"worse than identity with p = {worse.p:.3g}"),
            ok if ok is not None else None,
        )
    numbers = {}
    for k in VARIANTS:
        numbers[f"{label[k]} train error %"] = summary_dict(train[k])
        numbers[f"{label[k]} test error %"] = summary_dict(test[k])
        numbers[f"{label[k]} fails"] = mean[k] > FAIL_AT
    figure = error_bars(
        "Training and test error by shortcut (He2016 Table 1)", [label[k] for k in VARIANTS],
        [train[k] for k in VARIANTS], [test[k] for k in VARIANTS], hlines=[{"y": FAIL_AT, "label": "fail threshold"}],
    )  # fmt: skip
    return STUDY.result(
        ctx,
        verdict,
        numbers=numbers,
        key_number=f"train err: identity {mean['identity']:.1f}%, scaling {mean['scale']:.1f}%, "
        f"dropout {mean['dropout']:.1f}%",
        figures=[figure],
        setup=variant_setup(s.standin, s.paper_recipe, ctx.seeds, "CIFAR ResNet-110 with each shortcut"),
        runs=[r.id for recs in runs.values() for r in recs],
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
)
