"""concat — concatenating earlier features (DenseNet-style, as in NPLM and ESIM) also eases optimization.

A skip connection need not add: NPLM feeds the input words straight to the output layer
beside the hidden layer, ESIM concatenates earlier encodings, and DenseNet concatenates
every earlier layer's features to every later layer's input. Like addition, this gives
the gradient a short path to every layer. Compared at the degradation study's depths with
its plain and residual nets (the same runs), the dense nets sized to the plain nets'
parameter counts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..models import create_model
from ..train import TrainConfig
from . import degradation
from .base import Study, StudyContext
from .common import recipe_text
from .results import StudyResult
from .stats import greater
from .trained import Group, converged, convergence_rule, group_bars, group_curves, group_numbers, train_groups
from .verdict import Verdict

ALPHA = 0.05
PARAMS_TOL = 0.1
CLAIM = (
    "Concatenation skips (DenseNet-style) remove the degradation of deep plain nets as addition does: the deep "
    "dense net trains far better than the plain net of the same depth and parameters."
)
RULE = (
    "Final training error (eval mode, fixed training subset; a diverged run counts as 90%) of plain, residual "
    "and dense (concatenating) nets at the degradation study's depths, the dense ones' blocks holding as many "
    f"parameters as the plain ones' (±{PARAMS_TOL:.0%}). Precondition: the deep plain and the shallow dense net, whose further training could overturn (1) and "
    f"(2), {convergence_rule()}. Holds when (1) "
    f"the deep dense net's training error is below the deep plain net's (one-sided Welch t-test, p < {ALPHA}), and "
    "(2) the dense depth gap (deep − shallow) is smaller than the plain one."
)
ANCHORS = {
    "source": "Huang2017 (DenseNet) Table 2, CIFAR-10 test error % (with augmentation); Bengio2003; Chen2017",
    "DenseNet-40 (k = 12), 1.0M parameters": 7.00,
    "DenseNet-100 (k = 12), 7.0M parameters": 5.77,
    "ResNet-110, 1.7M parameters": 6.41,
}


@dataclass(frozen=True)
class Settings:
    nets: degradation.Settings  # the degradation study's nets at the same scale


SETTINGS = {scale: Settings(nets) for scale, nets in degradation.SETTINGS.items()}


def dense_label(depth: int) -> str:
    return f"dense-{depth}"


_GROWTH: dict[tuple[str, str], int] = {}  # (plain net, its options) -> growth: a search builds ~a dozen nets


def matched_growth(s: Settings, depth: int) -> int:
    """The growth (features each dense block adds) that gives the dense net's blocks the plain ones' parameters."""
    plain = degradation.configs(s.nets, [0], "plain", depth)[0]
    key = (plain.model, json.dumps(plain.model_options, sort_keys=True))
    if key not in _GROWTH:
        target = params(plain)
        hi = 1
        while params(_dense(s, [0], depth, hi)[0]) < target:  # double until the dense net is at least as large
            hi *= 2
        lo = hi // 2 + 1 if hi > 1 else 1
        while lo < hi:  # the smallest growth whose net is at least as large
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if params(_dense(s, [0], depth, mid)[0]) < target else (lo, mid)
        candidates = [g for g in (lo - 1, lo) if g >= 1]
        _GROWTH[key] = min(candidates, key=lambda g: abs(params(_dense(s, [0], depth, g)[0]) - target))
    return _GROWTH[key]


def _dense(s: Settings, seeds: Sequence[int], depth: int, growth: int) -> list[TrainConfig]:
    """The dense net of ``depth``: the residual MLP with concatenating blocks, or DenseNet for the CNN family."""
    if s.nets.family == "mlp":
        return degradation.configs(s.nets, seeds, "resnet", depth, shortcut="concat", growth=growth)
    dense_depth = 3 * max(1, round((depth - 4) / 3)) + 4  # DenseNet's 3n+4 nearest the depth
    return [
        c.replace(model="densenet40", model_options={"depth": dense_depth, "growth": growth})
        for c in degradation.configs(s.nets, seeds, "resnet", depth)
    ]


def params(config: TrainConfig) -> int:
    """The parameters in a run's blocks (the stem and classifier depend on the data, the blocks do not)."""
    net = create_model(config.model, **config.model_options)
    return sum(p.numel() for p in net.blocks.parameters())


def configs(s: Settings, seeds: Sequence[int], depth: int) -> list[TrainConfig]:
    return _dense(s, seeds, depth, matched_growth(s, depth))


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return degradation.plan(s.nets, seeds) + [c for depth in s.nets.depths for c in configs(s, seeds, depth)]


def judge(groups: dict[str, Group], s: Settings) -> Verdict:
    shallow, deep = s.nets.depths[0], s.nets.depths[-1]
    plain_s, plain_d = groups[degradation.label("plain", shallow)], groups[degradation.label("plain", deep)]
    dense_s, dense_d = groups[dense_label(shallow)], groups[dense_label(deep)]
    v = Verdict()
    converged(v, [plain_d, dense_s], [plain_s, dense_d])  # plain-deep and dense-shallow could overturn (1), (2)
    sizes = {g.label: params(g.records[0].config) for g in (plain_s, plain_d, dense_s, dense_d)}
    v.require(
        f"parameters in blocks: {', '.join(f'{k} {n:,}' for k, n in sizes.items())} (dense within {PARAMS_TOL:.0%} of plain)",
        all(
            abs(sizes[d.label] / sizes[p.label] - 1) <= PARAMS_TOL for d, p in ((dense_s, plain_s), (dense_d, plain_d))
        ),
    )
    t = greater(plain_d.final(), dense_d.final())
    v.check(f"{dense_d.label} {dense_d.text()} < {plain_d.label} {plain_d.text()} (p = {t.p:.3g})", t.outcome(ALPHA))
    gap_dense = dense_d.summary().mean - dense_s.summary().mean
    gap_plain = plain_d.summary().mean - plain_s.summary().mean
    v.check(f"dense depth gap {gap_dense:+.1f} points < plain depth gap {gap_plain:+.1f} points", gap_dense < gap_plain)
    return v


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    groups = degradation.trained(ctx, s.nets)
    groups |= train_groups(ctx, {dense_label(d): configs(s, ctx.seeds, d) for d in s.nets.depths})
    ordered = [
        groups[k]
        for d in s.nets.depths
        for k in (degradation.label("plain", d), degradation.label("resnet", d), dense_label(d))
    ]
    numbers = group_numbers(ordered)
    for d in s.nets.depths:
        numbers[f"{dense_label(d)} growth"] = matched_growth(s, d)
        for k in (degradation.label("plain", d), dense_label(d)):
            numbers[f"{k} parameters in blocks"] = params(groups[k].records[0].config)
    deep = s.nets.depths[-1]
    mean = {g.label: g.summary().mean for g in ordered}
    return STUDY.result(
        ctx,
        judge(groups, s),
        numbers=numbers,
        key_number=f"train err at depth {deep}: plain {mean[degradation.label('plain', deep)]:.1f}%, "
        f"residual {mean[degradation.label('resnet', deep)]:.1f}%, dense {mean[dense_label(deep)]:.1f}%",
        figures=[group_curves("Plain, residual and dense nets", ordered), group_bars("Final error", ordered)],
        setup={
            "models": f"the degradation study's nets ({degradation.describe_nets(s.nets)}) and dense nets of the "
            "same depths whose blocks concatenate their features to their input, parameter-matched to the plain nets",
            "data": f"{s.nets.data}, {s.nets.data_options}",
            "seeds": ctx.seeds,
            "recipe": recipe_text(s.nets.recipe),
        },
        runs=[r.id for g in ordered for r in g.records],
    )


STUDY = Study(
    id="concat",
    title="Concatenation skips also ease optimization (DenseNet, NPLM, ESIM)",
    claim=CLAIM,
    sources=["Huang2017", "Bengio2003", "Chen2017"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=130,
)
