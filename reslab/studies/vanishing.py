"""vanishing — gradients vanish or explode through deep plain stacks; init and normalization tame it.

Backprop multiplies the error by each layer's Jacobian: when those factors stay below 1
the gradient at the bottom vanishes, above 1 it explodes. The essay's claim is that the
problem "has been largely controlled by standard initialization and intermediate
normalization, which make deep networks able to converge": a claim about convergence,
tested here by training a deep plain net under each initialization. Beside it, the
gradient at initialization is measured layer by layer, including what BatchNorm does to
it: Yang2019 predict that in a ReLU net with BN the backward signal grows by
sqrt(π/(π−1)) ≈ 1.21 per layer at initialization, so "within one order of magnitude" is
not what BN gives, and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..models import mlp
from ..probes import GradientNorms, gradient_norms
from ..train import TrainConfig
from ..train.recipe import Recipe
from .base import Study, StudyContext
from .common import CHANCE_10, eval_data, recipe_text, run_config
from .results import FigureSpec, Series, StudyResult
from .stats import summarize
from .trained import Group, converged, group_curves, group_numbers, train_groups
from .verdict import Verdict

MANY, ABOUT_ONE = 3.0, 1.0  # orders of magnitude: "vanishes/explodes", "about one"
YANG_RATE = math.sqrt(math.pi / (math.pi - 1))  # Yang2019: growth of the backward signal per ReLU + BN layer
YANG_TOL = 0.2  # relative: the measured orders may differ this much from the prediction
LEARNS, STUCK = 0.5, 0.8  # training error as a share of chance: "converges" below, "does not" above
CLAIM = (
    "Through a deep plain ReLU stack the gradient vanishes under small initial weights and explodes under "
    "large ones by many orders of magnitude; standard (He) initialization with BatchNorm makes plain nets of "
    "tens of layers able to converge where small or unit initialization without BatchNorm cannot."
)
RULE = (
    "Gradient at initialization: orders of magnitude = log10(‖∂E/∂x_0‖ / ‖∂E/∂x_L‖) over the L hidden layers, "
    "mean over seeds (float64). Training: a plain MLP of tens of layers (He2015: 'networks with tens of layers "
    "start converging') under each initialization, one recipe, final training error in eval mode (a diverged run "
    "counts as chance, 90%). Precondition: the small and unit init nets, whose further training could overturn "
    f"(5), converged. Holds when (1) small init < −{MANY:g} orders, (2) unit init > +{MANY:g}, (3) He init within "
    f"±{ABOUT_ONE:g}, (4) He + BN grows the signal as Yang2019 predict, L·log10 √(π/(π−1)) orders within "
    f"{YANG_TOL:.0%}, and (5) He + BN trains to below {LEARNS:.0%} of chance while small and unit init stay above "
    f"{STUCK:.0%} of it."
)
ANCHORS = {
    "source": "He2015 Sec. 1 and 4.1; Glorot2010; Yang2019 (BatchNorm's gradient explosion at initialization)",
    "He2015 on its BN plain nets": "backward gradients 'exhibit healthy norms'",
    "He2015 Sec. 1": "normalized init and BN 'enable networks with tens of layers to start converging'",
    "Yang2019, ReLU + BN": f"backward signal × √(π/(π−1)) ≈ {YANG_RATE:.3f} per layer at initialization",
}
INITS = {  # label -> (init, norm)
    "small N(0, 0.01²)": ("small", "none"),
    "unit N(0, 1)": ("unit", "none"),
    "Glorot": ("glorot", "none"),
    "He": ("he", "none"),
    "He + BN": ("he", "bn"),
}
TRAINED = ("small N(0, 0.01²)", "unit N(0, 1)", "He", "He + BN")


@dataclass(frozen=True)
class Settings:
    depth: int  # hidden layers of the nets whose gradient is measured at initialization
    width: int
    batch: int  # images the gradient at initialization is measured on
    recipe: Recipe  # how the deep plain nets are trained
    train_depth: int = 20  # He2015: "networks with tens of layers" start converging
    train_width: int = 64
    data_options: dict | None = None
    eval_every: int = 0  # steps between validations (0: every epoch)


SETTINGS = {
    "smoke": Settings(
        depth=10,
        width=32,
        batch=16,
        train_depth=6,
        train_width=16,
        recipe=Recipe(steps=6, batch_size=32, schedule="wsd"),
        data_options={"train_size": 128, "val_size": 64, "test_size": 64, "image_size": 7},
    ),
    "quick": Settings(
        depth=50,
        width=256,
        batch=128,
        recipe=Recipe(lr=0.05, steps=400, batch_size=128, schedule="wsd"),
        data_options={"train_size": 500, "val_size": 1000, "test_size": 1000, "image_size": 14},
        eval_every=50,  # an epoch of 500 images is 4 steps
    ),
    "full": Settings(
        depth=50,
        width=256,
        batch=128,
        train_width=256,
        recipe=Recipe(lr=0.05, epochs=20, batch_size=128, schedule="wsd"),
        data_options={},
    ),
}


def configs(s: Settings, seeds: Sequence[int], label: str) -> list[TrainConfig]:
    init, norm = INITS[label]
    options = {"depth": s.train_depth, "width": s.train_width, "init": init, "norm": norm}
    return [
        run_config(
            "mlp_plain",
            s.recipe,
            seed,
            options,
            s.data_options,
            eval_train_size=1000,
            eval_every=s.eval_every,
            convergence_check=True,
        )
        for seed in seeds
    ]


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return [c for label in TRAINED for c in configs(s, seeds, label)]


def gradients_at_init(ctx: StudyContext, s: Settings) -> dict[str, list[GradientNorms]]:
    config = TrainConfig(model="mlp_plain", data="fashion-mnist", data_options={"train_size": s.batch})
    x, y = eval_data(config.replace(data_dir=ctx.data_dir), "train", s.batch)
    results: dict[str, list[GradientNorms]] = {}
    for label, (init, norm) in INITS.items():
        results[label] = []
        for seed in ctx.seeds:
            torch.manual_seed(seed)
            net = mlp(depth=s.depth, width=s.width, init=init, norm=norm).train()
            r = gradient_norms(net, x, y, dtype=torch.float64)
            r.save(ctx.data_path(f"{init}-{norm}-seed{seed}"))
            results[label].append(r)
    return results


def judge(orders: dict, groups: dict[str, Group], depth: int) -> Verdict:
    v = Verdict()
    stuck_nets = [groups["small N(0, 0.01²)"], groups["unit N(0, 1)"]]  # could overturn (5) by training further
    converged(v, stuck_nets, [g for g in groups.values() if g not in stuck_nets])
    small, unit = orders["small N(0, 0.01²)"], orders["unit N(0, 1)"]
    v.check(f"small init: {small} orders (< −{MANY:g})", small.mean < -MANY)
    v.check(f"unit init: {unit} orders (> +{MANY:g})", unit.mean > MANY)
    v.check(f"He: {orders['He']} orders (within ±{ABOUT_ONE:g})", abs(orders["He"].mean) <= ABOUT_ONE)
    predicted = depth * math.log10(YANG_RATE)
    bn = orders["He + BN"]
    v.check(
        f"He + BN: {bn} orders, Yang2019 predict {predicted:.2f} ({depth} layers × log10 {YANG_RATE:.3f}; "
        f"within {YANG_TOL:.0%}): BN does not keep the gradient within one order at initialization",
        abs(bn.mean - predicted) <= YANG_TOL * predicted,
    )
    learns = groups["He + BN"].summary().mean < LEARNS * CHANCE_10
    stuck = [k for k in ("small N(0, 0.01²)", "unit N(0, 1)") if groups[k].summary().mean > STUCK * CHANCE_10]
    v.check(
        "training the deep plain net: "
        + ", ".join(f"{k} {g.text()}" for k, g in groups.items())
        + f" (He + BN < {LEARNS * CHANCE_10:g}%, small and unit > {STUCK * CHANCE_10:g}%)",
        learns and len(stuck) == 2,
    )
    return v


def figures(
    results: dict[str, list[GradientNorms]], groups: dict[str, Group], depth: int, train_depth: int
) -> list[FigureSpec]:
    layers = [float(i) for i in range(depth + 1)]
    series = []
    for label, rs in results.items():
        logs = np.log10(np.array([r.activation_grad_norms for r in rs]))
        series.append(Series(label, layers, list(logs.mean(axis=0)), list(logs.std(axis=0)) if len(rs) > 1 else None))
    return [
        FigureSpec(
            "lines",
            f"Backward signal through a {depth}-layer plain ReLU MLP at initialization",
            "layer (0 = first hidden layer)",
            "log10 ‖∂E/∂x_l‖",
            series,
        ),
        group_curves(f"Training a plain MLP of {train_depth} layers", list(groups.values())),
    ]


def _bn_note(bn_orders: float, depth: int) -> str:
    """What the measurement says about BN at initialization, in words (empty when it stays within one order)."""
    if abs(bn_orders) <= ABOUT_ONE:
        return ""
    predicted = depth * math.log10(YANG_RATE)
    agrees = abs(bn_orders - predicted) <= YANG_TOL * predicted
    return (
        f"BatchNorm grows the backward signal by {bn_orders:+.1f} orders of magnitude over {depth} layers at "
        f"initialization ({'as' if agrees else 'unlike'} Yang2019's mean-field prediction of {predicted:+.1f}): BN "
        "does not keep the gradient within one order of magnitude. The essay's claim is about convergence, which "
        "the training check tests."
    )


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    results = gradients_at_init(ctx, s)
    groups = train_groups(ctx, {label: configs(s, ctx.seeds, label) for label in TRAINED})
    orders = {k: summarize([r.activation_grad_orders for r in v]) for k, v in results.items()}
    numbers = {f"{k} orders of magnitude": o.to_dict() for k, o in orders.items()}
    numbers["Yang2019 prediction for He + BN (orders)"] = round(s.depth * math.log10(YANG_RATE), 3)
    numbers |= group_numbers(groups.values(), test=False)
    notes = _bn_note(orders["He + BN"].mean, s.depth)
    return STUDY.result(
        ctx,
        judge(orders, groups, s.depth),
        numbers=numbers,
        key_number=", ".join(f"{k.split(' ')[0] if 'N(' in k else k} {o.mean:+.1f}" for k, o in orders.items())
        + f" orders; trained: He + BN {groups['He + BN'].text()}",
        figures=figures(results, groups, s.depth, s.train_depth),
        setup={
            "models": f"plain ReLU MLPs: {s.depth} hidden layers of width {s.width} (gradients at initialization), "
            f"{s.train_depth} of width {s.train_width} (training)",
            "data": f"{s.batch} Fashion-MNIST training images (gradients); {s.data_options} (training)",
            "seeds": ctx.seeds,
            "recipe": recipe_text(s.recipe),
        },
        notes=notes,
    )


STUDY = Study(
    id="vanishing",
    title="Vanishing and exploding gradients in deep plain stacks",
    claim=CLAIM,
    sources=["He2015", "Glorot2010", "Yang2019"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=10,
)
