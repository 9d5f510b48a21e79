"""vanishing — gradients vanish or explode through deep plain stacks; init and normalization tame it.

Backprop multiplies the error by each layer's Jacobian: when those factors stay below 1
the gradient at the bottom vanishes, above 1 it explodes. Measured at initialization on
a deep plain ReLU MLP under several initializations, on a batch of real images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models import mlp
from ..probes import GradientNorms, gradient_norms
from ..train import TrainConfig
from .base import Study, StudyContext
from .common import eval_data
from .results import FigureSpec, Series, StudyResult
from .stats import summarize
from .verdict import Verdict

CLAIM = (
    "Through a deep plain ReLU stack the gradient vanishes under small initial weights and explodes "
    "under large ones by many orders of magnitude; He initialization, with or without BatchNorm, "
    "keeps it within about one order of magnitude."
)
MANY, ABOUT_ONE = 3.0, 1.0
RULE = (
    "Orders of magnitude = log10(‖∂E/∂x_0‖ / ‖∂E/∂x_L‖), the backward signal at the first hidden layer "
    "relative to the last, at initialization, mean over seeds (float64, so explosions do not overflow). "
    f"Holds when small init < −{MANY:.0f}, unit init > +{MANY:.0f}, and He init and He + BN each lie "
    f"within ±{ABOUT_ONE:.0f}."
)
ANCHORS = {
    "source": "He2015 Sec. 1 and 4.1; Glorot & Bengio 2010; He et al. 2015 (Delving deep)",
    "He2015 on its BN plain nets": "backward gradients 'exhibit healthy norms'",
}
INITS = {  # label -> (init, norm)
    "small N(0, 0.01²)": ("small", "none"),
    "unit N(0, 1)": ("unit", "none"),
    "Glorot": ("glorot", "none"),
    "He": ("he", "none"),
    "He + BN": ("he", "bn"),
}


@dataclass(frozen=True)
class Settings:
    depth: int
    width: int
    batch: int


SETTINGS = {
    "smoke": Settings(depth=10, width=32, batch=16),
    "quick": Settings(depth=50, width=256, batch=128),
    "full": Settings(depth=50, width=256, batch=128),
}


def _batch(ctx: StudyContext, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    config = TrainConfig(model="mlp_plain", data="fashion-mnist", data_options={"train_size": n}, data_dir=ctx.data_dir)
    return eval_data(config, "train", n)


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    x, y = _batch(ctx, s.batch)
    results: dict[str, list[GradientNorms]] = {}
    for label, (init, norm) in INITS.items():
        results[label] = []
        for seed in range(ctx.seeds):
            torch.manual_seed(seed)
            net = mlp(depth=s.depth, width=s.width, init=init, norm=norm).train()
            r = gradient_norms(net, x, y, dtype=torch.float64)
            r.save(ctx.data_path(f"{init}-{norm}-seed{seed}"))
            results[label].append(r)
    orders = {k: summarize([r.activation_grad_orders for r in v]) for k, v in results.items()}
    v = Verdict()
    v.check(
        f"small init: {orders['small N(0, 0.01²)']} orders (< −{MANY:.0f})", orders["small N(0, 0.01²)"].mean < -MANY
    )
    v.check(f"unit init: {orders['unit N(0, 1)']} orders (> +{MANY:.0f})", orders["unit N(0, 1)"].mean > MANY)
    for k in ("He", "He + BN"):
        v.check(f"{k}: {orders[k]} orders (within ±{ABOUT_ONE:.0f})", abs(orders[k].mean) <= ABOUT_ONE)
    layers = [float(i) for i in range(s.depth + 1)]
    series = []
    for label, rs in results.items():
        logs = np.log10(np.array([r.activation_grad_norms for r in rs]))
        series.append(Series(label, layers, list(logs.mean(axis=0)), list(logs.std(axis=0)) if len(rs) > 1 else None))
    figures = [
        FigureSpec(
            "lines",
            f"Backward signal through a {s.depth}-layer plain ReLU MLP at initialization",
            "layer (0 = first hidden layer)",
            "log10 ‖∂E/∂x_l‖",
            series,
        )
    ]
    notes = ""
    if abs(orders["He + BN"].mean) > ABOUT_ONE:
        notes = (
            "He + BN grows the backward signal by about "
            f"{orders['He + BN'].mean:.1f} orders of magnitude over {s.depth} layers: BatchNorm in training "
            "mode makes a deep plain net's gradient explode at initialization (Yang et al. 2019, 'A mean field "
            "theory of batch normalization'), a refinement of He2015's 'healthy norms'. Small and unit "
            "initialization are still tens of orders of magnitude worse."
        )
    return STUDY.result(
        ctx,
        v,
        numbers={f"{k} orders of magnitude": o.to_dict() for k, o in orders.items()},
        key_number=", ".join(f"{k.split(' ')[0] if 'N(' in k else k} {o.mean:+.1f}" for k, o in orders.items())
        + " orders",
        figures=figures,
        setup={
            "models": f"plain ReLU MLP, {s.depth} hidden layers of width {s.width}, at initialization",
            "data": f"one batch of {s.batch} Fashion-MNIST training images; cross-entropy loss",
            "seeds": ctx.seeds,
        },
        notes=notes,
    )


STUDY = Study(
    id="vanishing",
    title="Vanishing and exploding gradients in deep plain stacks",
    claim=CLAIM,
    sources=["He2015"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
)
