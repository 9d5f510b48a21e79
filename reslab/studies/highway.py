"""highway — gated shortcuts also train very deep nets (Srivastava2015).

A highway layer computes H(x)·T(x) + x·(1 − T(x)): a learned gate T, biased towards carrying
the input (gate bias −2), decides per unit how much of the transformation passes. Like the
identity shortcut of a residual net, the carry path lets information and gradient cross
many layers, and Srivastava2015 train fully connected nets of 100 layers with it where
plain nets of that depth fail. Compared at Srivastava2015's depths and parameter budget:
plain layers of width 71, highway layers of width 50 (two weight matrices each), and
residual units of width 71. As Srivastava2015 did with a random search per depth, each net is
judged at the best setting of a small search of its own (``SEARCH``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models import create_model
from ..train import TrainConfig
from ..train.recipe import Recipe
from .base import Study, StudyContext
from .common import eval_data, recipe_text, run_config
from .results import FigureSpec, Series, StudyResult
from .stats import greater
from .trained import Group, converged, convergence_rule, group_numbers, train_groups
from .verdict import Verdict

ALPHA = 0.05
FLAT = 5.0  # points: "does not degrade" (deep no more than this above shallow)
STUCK = 50.0  # % training error: a net this far from trained gets a note on the signal it started with
CLAIM = (
    "Plain fully connected nets train worse as they get deeper, while highway nets and residual nets of the "
    "same depths and parameters do not."
)
FAMILIES = {  # family -> model options (Srivastava2015: plain 71 wide; highway 50 wide, two matrices a layer)
    "plain": {"width": 71, "shortcut": "none", "norm": "none"},
    "highway": {
        "width": 50,
        "shortcut": "exclusive-gate",
        "gate_bias": -2.0,
        "order": "relu-before-add",
        "norm": "none",
    },
    "residual": {"width": 71, "shortcut": "identity", "order": "preact", "norm": "bn"},
}
# Srivastava2015 chose each family's hyper-parameters per depth by a random search (learning rate, momentum, its
# decay, the activation, and the highway nets' initial gate bias) and report each net's best run. Here each family
# tries, beside the shared recipe (first, and chosen on ties), the change its quick-scale nets showed they need:
# deep plain nets diverge at the shared rate on some seeds, and a deep highway stack with gate bias -2 starts with
# a vanishing forward signal (the measurements: README, "What does not reproduce"). Residual nets need none.
SEARCH: dict[str, tuple[dict, ...]] = {
    "plain": ({}, {"lr": 0.01}),
    "highway": ({}, {"gate_bias": -4.0}),
    "residual": ({},),
}
KNOBS = {"lr": "lr", "gate_bias": "gate bias"}
# The plain nets, whose further training could overturn check (1), train this many times as long as the others:
# more training can only lower their error, and at the shared length a deep plain net that starts to learn and
# falls back within its schedule cannot be shown converged (README).
LONGER = {"plain": 2}


def spelled(change: dict) -> str:
    return ", ".join(f"{KNOBS[k]} {v:g}" for k, v in change.items())


def search_text() -> str:
    """What each family tries, in words (for the rule and the report's setup)."""
    return "; ".join(f"{f}: the shared recipe" + "".join(f" or {spelled(c)}" for c in SEARCH[f] if c) for f in FAMILIES)


RULE = (
    "Final training error (eval mode; a diverged run counts as 90%) at the shallowest and deepest depth; the plain "
    f"nets train {LONGER['plain']}x as long as the others. Each "
    f"family at each depth trains every setting of its search ({search_text()}) and is judged at the one with "
    "the lowest mean training error, as Srivastava2015 judged each net at its best setting. Precondition: the "
    "deepest plain net and the shallowest highway and residual nets, whose further training could overturn a "
    f"check, {convergence_rule()}. Holds when (1) the deepest plain net's training error is significantly above "
    f"the shallowest plain net's (one-sided Welch t-test, p < {ALPHA}), and (2) the deepest highway and residual "
    f"nets are each no more than {FLAT:g} points above their shallowest."
)
ANCHORS = {
    "source": "Srivastava2015 Fig. 1 and Table 1; He2015 Table 6",
    "Srivastava2015 (MNIST)": "100-layer highway nets train; plain nets degrade beyond ~20 layers",
    "Highway-19 on CIFAR-10 (He2015 Table 6)": "7.54% test error",
    "gate bias": "searched per depth with the learning rate (here −2 or −4)",
}


@dataclass(frozen=True)
class Settings:
    depths: tuple[int, ...]  # layers, shallowest first
    recipe: Recipe
    data_options: dict = field(default_factory=dict)
    gate_batch: int = 500  # images the transform gates are read on after training
    eval_every: int = 0  # steps between validations (0: every epoch)


SETTINGS = {
    "smoke": Settings(
        depths=(2, 6),
        recipe=Recipe(lr=0.05, steps=6, batch_size=32, schedule="wsd"),
        data_options={"train_size": 128, "val_size": 64, "test_size": 64, "image_size": 7},
        gate_batch=32,
    ),
    "quick": Settings(
        depths=(10, 100),
        recipe=Recipe(lr=0.05, steps=1000, batch_size=128, schedule="wsd"),
        data_options={"train_size": 500, "val_size": 1000, "test_size": 1000, "image_size": 14},
        eval_every=100,  # an epoch of 500 images is 4 steps
    ),
    "full": Settings(
        depths=(10, 20, 50, 100),
        recipe=Recipe(lr=0.05, epochs=100, batch_size=128, schedule="wsd"),
        data_options={},
    ),
}


def label(family: str, depth: int, change: dict | None = None) -> str:
    return f"{family}-{depth}" + (f", {spelled(change)}" if change else "")


def configs(
    s: Settings, seeds: Sequence[int], family: str, depth: int, change: dict | None = None
) -> list[TrainConfig]:
    """One run per seed of ``family`` at ``depth`` with one setting of its search (``change``)."""
    change = dict(change or {})
    recipe = s.recipe.replace(lr=change.pop("lr")) if "lr" in change else s.recipe
    factor = LONGER.get(family, 1)
    if factor != 1:
        recipe = (
            recipe.replace(steps=recipe.steps * factor)
            if recipe.steps
            else recipe.replace(epochs=recipe.epochs * factor)
        )
    options = {"depth": depth, **FAMILIES[family], **change}
    return [
        run_config(
            "mlp_plain",
            recipe,
            seed,
            options,
            s.data_options,
            eval_train_size=1000,
            log_every=20,
            eval_every=s.eval_every,
            convergence_check=True,
        )
        for seed in seeds
    ]


def planned(s: Settings, seeds: Sequence[int]) -> dict[str, list[TrainConfig]]:
    """Every setting of every family's search at every depth, by label."""
    return {label(f, d, c): configs(s, seeds, f, d, c) for d in s.depths for f in FAMILIES for c in SEARCH[f]}


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return [c for group in planned(s, seeds).values() for c in group]


def best(tried: dict[str, Group], s: Settings) -> dict[str, Group]:
    """Each family at each depth at the setting of its search with the lowest mean final training error (the
    first, the shared recipe, on ties), by ``label(family, depth)``; the group keeps its setting's label."""
    return {
        label(f, d): min((tried[label(f, d, c)] for c in SEARCH[f]), key=lambda g: g.summary().mean)
        for d in s.depths
        for f in FAMILIES
    }


def judge(groups: dict[str, Group], s: Settings) -> Verdict:
    shallow, deep = s.depths[0], s.depths[-1]
    v = Verdict()
    plain_s, plain_d = groups[label("plain", shallow)], groups[label("plain", deep)]
    decisive = [plain_d, groups[label("highway", shallow)], groups[label("residual", shallow)]]
    converged(v, decisive, [g for g in groups.values() if g not in decisive])  # could overturn (1), (2)
    t = greater(plain_d.final(), plain_s.final())
    v.check(f"{plain_d.label} {plain_d.text()} > {plain_s.label} {plain_s.text()} (p = {t.p:.3g})", t.outcome(ALPHA))
    for family in ("highway", "residual"):
        a, b = groups[label(family, shallow)], groups[label(family, deep)]
        gap = b.summary().mean - a.summary().mean
        v.check(f"{b.label} {b.text()} vs {a.label} {a.text()}: {gap:+.1f} points (≤ {FLAT:g})", gap <= FLAT)
    return v


def gate_activity(ctx: StudyContext, s: Settings, group: Group) -> np.ndarray:
    """Srivastava2015 Fig. 2: the mean transform-gate output T(x) per layer after training, over seeds."""
    x, _ = eval_data(group.records[0].config, "train", s.gate_batch)
    per_seed = []
    for record in group.records:
        net = record.load_model()
        with torch.no_grad():
            h = net.stem(x)
            means = []
            for block in net.blocks:
                means.append(float(block.merge.gate(h).mean()))  # T(x) of this layer, on its own input
                h = block(h)
        per_seed.append(means)
    return np.mean(per_seed, axis=0)


def signal_at_init(config: TrainConfig, s: Settings) -> float:
    """‖output of the last layer‖ / ‖input of the first‖ at initialization, mean over a batch: how much
    of the input the net of ``config``, freshly initialized, passes on to its classifier."""
    x, _ = eval_data(config, "train", s.gate_batch)
    torch.manual_seed(config.seed)
    net = create_model(
        config.model, input_shape=list(x.shape[1:]), **config.model_options
    )  # train mode: BN normalizes by the batch
    with torch.no_grad():
        h0 = net.stem(x)
        h = h0
        for block in net.blocks:
            h = block(h)
    return float((h.norm(dim=1) / h0.norm(dim=1)).mean())


def stuck_note(tried: dict[str, Group], s: Settings) -> str:
    """Why a deep highway or residual net stayed near chance at every setting tried, measured: the forward
    signal each setting starts with (first seed)."""
    deep = s.depths[-1]
    stuck = [
        f for f in ("highway", "residual") if all(tried[label(f, deep, c)].summary().mean > STUCK for c in SEARCH[f])
    ]
    if not stuck:
        return ""
    deepest = [label(f, deep, c) for f in FAMILIES for c in SEARCH[f]]
    ratios = {k: signal_at_init(tried[k].records[0].config, s) for k in deepest}
    return (
        f"{', '.join(label(f, deep) for f in stuck)} stayed near chance (above {STUCK:g}% training error) at every "
        f"setting tried. At initialization the forward signal of the {deep}-layer nets reaches their classifier "
        "scaled by "
        + ", ".join(f"{r:.2g} ({k})" for k, r in ratios.items())
        + ": a highway layer carries only 1 − σ(b) of its input, so with gate bias b a deep stack starts with a "
        "vanishing signal and gradient."
    )


def figures(tried: dict[str, Group], gated: Group, gates: np.ndarray, s: Settings) -> list[FigureSpec]:
    """Training error at each depth for every setting tried (bars: the settings' lines would lie on each other),
    and the gates of the deepest highway net as judged (``gated``)."""
    settings = [(f, c) for f in FAMILIES for c in SEARCH[f]]
    series = []
    for depth in s.depths:
        stats = [tried[label(f, depth, c)].summary() for f, c in settings]
        series.append(
            Series(
                f"{depth} layers",
                list(range(len(settings))),
                [x.mean for x in stats],
                [x.std if x.n > 1 else 0.0 for x in stats],
            )
        )
    return [
        FigureSpec(
            "bars",
            "Training error by depth, each setting tried (each net is judged at its best)",
            "",
            "training error (%)",
            series,
            categories=[f"{f}, {spelled(c)}" if c else f for f, c in settings],
        ),
        FigureSpec(
            "lines",
            f"Transform gate activity per layer, {gated.label} after training",
            "layer",
            "mean T(x)",
            [
                Series(
                    "highway",
                    [float(i + 1) for i in range(len(gates))],
                    [float(g) for g in gates],
                    style="solid+markers",
                )
            ],
        ),
    ]


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    tried = train_groups(ctx, planned(s, ctx.seeds))
    groups = best(tried, s)
    deep = s.depths[-1]
    gates = gate_activity(ctx, s, groups[label("highway", deep)])
    numbers = group_numbers(tried.values())
    numbers |= {f"{k} judged at": g.label for k, g in groups.items()}
    numbers["highway mean gate activity, first / last layer"] = [round(float(gates[0]), 3), round(float(gates[-1]), 3)]
    verdict = judge(groups, s)
    note = stuck_note(tried, s)
    if note:
        verdict.notes.append(note)
    return STUDY.result(
        ctx,
        verdict,
        numbers=numbers,
        key_number=", ".join(f"{groups[label(f, deep)].label} {groups[label(f, deep)].text()}" for f in FAMILIES)
        + " training error",
        figures=figures(tried, groups[label("highway", deep)], gates, s),
        setup={
            "models": "fully connected nets: plain (width 71, no BN), highway (width 50, gate bias −2, no BN), "
            f"residual (width 71, pre-activation with BN); {' and '.join(map(str, s.depths))} layers",
            "search": f"{search_text()}; each net judged at its best (the rule)",
            "data": f"Fashion-MNIST, {s.data_options}",
            "seeds": ctx.seeds,
            "recipe": f"{recipe_text(s.recipe)}; plain nets {LONGER['plain']}x as long",
        },
        runs=[r.id for g in tried.values() for r in g.records],
    )


STUDY = Study(
    id="highway",
    title="Gated shortcuts also train very deep nets (Srivastava2015)",
    claim=CLAIM,
    sources=["Srivastava2015", "He2015"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=110,
)
