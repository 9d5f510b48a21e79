"""propagation — the identity term carries signal directly, forward and backward (He2016 Sec. 3).

With identity shortcuts, ∂E/∂x_l = ∂E/∂x_L (1 + ∂(Σ F_i)/∂x_l): the "1" delivers the
error to every lower unit without passing a weight layer, so the gradient does not vanish
even when the branches are small. With shortcuts scaled by λ the factor becomes Π λ_i.
Measured at initialization on a deep residual MLP (no shape changes, so every shortcut is
a true identity) and its plain twin, with the branch outputs scaled by s.

The nets have no BatchNorm, as in He2016's derivation: BN makes a unit's Jacobian
scale-invariant (a branch fed a shrinking signal amplifies its gradient in proportion),
which would hide both the "1" and the Π λ_i this claim is about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models import mlp
from ..probes import Propagation, signal_propagation
from ..train import TrainConfig
from .base import Study, StudyContext
from .common import eval_data
from .results import FigureSpec, Series, StudyResult
from .stats import summarize
from .verdict import Verdict

CLAIM = (
    "With identity shortcuts the backward signal reaches every unit with a ratio ‖∂E/∂x_l‖/‖∂E/∂x_L‖ of "
    "at least about 1, even when the branches are small; a plain stack's collapses, and shortcuts "
    "scaled by λ multiply it by λ per unit."
)
FLOOR, COLLAPSED = 0.9, 1e-3  # "at least about 1"; "collapsed"
LAMBDA, LAMBDA_TOL = 0.5, 0.1  # the scaled shortcut, and how close its per-unit factor must come (relative)
RULE = (
    "At initialization, mean over seeds. Holds when (1) with identity shortcuts the smallest ratio over "
    f"all units is ≥ {FLOOR} at every branch scale s; (2) the plain stack's ratio at the first unit is "
    f"< {COLLAPSED:g} at every s < 1; and (3) with shortcuts scaled by λ = {LAMBDA} and the smallest branch "
    f"scale s, the ratio falls by a factor within {LAMBDA_TOL:.0%} of λ per unit (fitted over all units)."
)
ANCHORS = {
    "source": "He2016 Sec. 3 (Eq. 4-5) and Sec. 3.1 (Eq. 6-7)",
    "identity shortcuts": "∂E/∂x_l = ∂E/∂x_L (1 + ∂ΣF/∂x_l): the 1 is never cancelled",
    "constant scaling λ": "factor Π λ_i: vanishes (λ < 1) or explodes (λ > 1) exponentially",
}
# family -> (label, mlp options); all two-layer pre-activation units of the same width
FAMILIES = {
    "identity": ("identity shortcut", {"shortcut": "identity"}),
    "plain": ("plain (no shortcut)", {"shortcut": "none"}),
    "scale": (f"shortcut × {LAMBDA}", {"shortcut": "scale", "shortcut_scale": LAMBDA}),
    "shortcut-gate": ("shortcut-only gate, b = 0", {"shortcut": "shortcut-gate", "gate_bias": 0.0}),
    "exclusive-gate": ("exclusive gate, b = −6", {"shortcut": "exclusive-gate", "gate_bias": -6.0}),
    "linear": ("1×1 (linear) shortcut", {"shortcut": "projection"}),
    "dropout": ("dropout 0.5 shortcut", {"shortcut": "dropout", "shortcut_dropout": 0.5}),
}


@dataclass(frozen=True)
class Settings:
    units: int
    width: int
    batch: int
    scales: tuple[float, ...] = (1.0, 0.1, 0.01)


SETTINGS = {
    "smoke": Settings(units=6, width=16, batch=16),
    "quick": Settings(units=50, width=64, batch=128),
    "full": Settings(units=100, width=256, batch=256),
}


def _net(s: Settings, options: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    base = {"depth": s.units, "width": s.width, "layers_per_block": 2, "order": "preact", "norm": "none"}
    return mlp(**base, **options).train()


def measure(ctx: StudyContext, s: Settings) -> dict[tuple[str, float], np.ndarray]:
    """The ratio per unit for every family and branch scale: (seeds, units + 1) arrays."""
    config = TrainConfig(model="mlp_residual", data="fashion-mnist", data_options={"train_size": s.batch})
    x, y = eval_data(config.replace(data_dir=ctx.data_dir), "train", s.batch)
    ratios, shares = {}, []
    for fam, (_, options) in FAMILIES.items():
        for scale in s.scales:
            runs: list[Propagation] = []
            for seed in ctx.seeds:
                r = signal_propagation(_net(s, options, seed), x, y, branch_scale=scale, dtype=torch.float64, seed=seed)
                r.save(ctx.data_path(f"{fam}-s{scale:g}-seed{seed}"))
                runs.append(r)
            ratios[fam, scale] = np.array([r.ratio for r in runs])
            if fam == "identity" and scale == 1.0:
                shares = [r.identity_share for r in runs]
    ratios["identity share", 1.0] = np.array(shares)
    return ratios


def lambda_factor(ratios: dict, s: Settings) -> float:
    """The per-unit factor of the λ-scaled shortcut's ratio at the smallest branch scale (a log-linear fit)."""
    lam = ratios["scale", min(s.scales)].mean(axis=0)
    if not np.all(lam > 0):
        return float("nan")
    return float(10 ** -np.polyfit(np.arange(len(lam)), np.log10(lam), 1)[0])


def judge(ratios: dict, s: Settings) -> Verdict:
    v = Verdict()
    mins = {sc: summarize(ratios["identity", sc].min(axis=1)) for sc in s.scales}
    listed = ", ".join(f"{mins[sc].mean:.2f} at s = {sc:g}" for sc in s.scales)
    v.check(f"identity: smallest ratio over units {listed} (≥ {FLOOR})", all(m.mean >= FLOOR for m in mins.values()))
    firsts = {sc: summarize(ratios["plain", sc][:, 0]) for sc in s.scales}
    small = [sc for sc in s.scales if sc < 1]
    listed = ", ".join(f"{firsts[sc].mean:.3g} at s = {sc:g}" for sc in s.scales)
    v.check(
        f"plain: ratio at the first unit {listed} (< {COLLAPSED:g} for s < 1)",
        all(firsts[sc].mean < COLLAPSED for sc in small) if small else None,
    )
    factor = lambda_factor(ratios, s)
    v.check(
        f"shortcut × {LAMBDA}: ratio falls by {factor:.3f} per unit ({LAMBDA} ± {LAMBDA_TOL:.0%})",
        abs(factor - LAMBDA) <= LAMBDA_TOL * LAMBDA,
    )
    return v


def figures(ratios: dict, s: Settings) -> list[FigureSpec]:
    xs = [float(u) for u in range(ratios["identity", 1.0].shape[1])]
    out = []
    for sc in s.scales:
        series = []
        for fam, (label, _) in FAMILIES.items():
            with np.errstate(divide="ignore"):
                series.append(Series(label, xs, [float(v) for v in np.exp(np.log(ratios[fam, sc]).mean(axis=0))]))
        out.append(
            FigureSpec(
                "lines",
                f"‖∂E/∂x_l‖ / ‖∂E/∂x_L‖, branches scaled by s = {sc:g}",
                "unit l",
                "ratio",
                series,
                logy=True,
                hlines=[{"y": 1.0, "label": "1"}],
                panel="ratio",
            )
        )
    share = ratios["identity share", 1.0].mean(axis=0)
    out.append(
        FigureSpec(
            "lines",
            "Identity term's share of the backward signal (identity shortcuts, s = 1)",
            "unit l",
            "‖d_l‖ / (‖d_l‖ + ‖r_l‖)",
            [Series("identity shortcut", xs, [float(v) for v in share])],
        )
    )
    return out


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    ratios = measure(ctx, s)
    numbers = {
        f"identity: min ratio at s={sc:g}": summarize(ratios["identity", sc].min(axis=1)).to_dict() for sc in s.scales
    }
    numbers |= {
        f"plain: ratio at first unit, s={sc:g}": summarize(ratios["plain", sc][:, 0]).to_dict() for sc in s.scales
    }
    factor = lambda_factor(ratios, s)
    numbers[f"shortcut x {LAMBDA}: ratio factor per unit (s=min)"] = round(factor, 4)
    for fam, (label, _) in FAMILIES.items():
        numbers[f"{label}: ratio at first unit, s=1"] = summarize(ratios[fam, 1.0][:, 0]).to_dict()
    numbers["identity share at the first unit, s=1"] = round(float(ratios["identity share", 1.0].mean(axis=0)[0]), 3)
    low = min(s.scales)
    return STUDY.result(
        ctx,
        judge(ratios, s),
        numbers=numbers,
        key_number=f"first-unit ratio at s = {low:g}: identity {ratios['identity', low][:, 0].mean():.2f}, "
        f"plain {ratios['plain', low][:, 0].mean():.2g}; ×{LAMBDA} shortcut: {factor:.2f}/unit",
        figures=figures(ratios, s),
        setup={
            "models": f"MLP of {s.units} two-layer pre-activation units (ReLU, no BN) of width {s.width}, He init, "
            "at initialization, with each shortcut",
            "data": f"one batch of {s.batch} Fashion-MNIST training images; cross-entropy; float64",
            "seeds": ctx.seeds,
            "branch scales s": list(s.scales),
        },
    )


STUDY = Study(
    id="propagation",
    title="The identity term carries the signal (He2016 Sec. 3)",
    claim=CLAIM,
    sources=["He2016"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    order=40,
)
