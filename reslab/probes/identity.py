"""Identity fitting (He2015 Sec. 1 and 3.1, the construction argument; claim ``identity``).

He2015's argument: a deeper net could copy a shallower one and make its extra layers
identity maps, so it should never do worse; that deeper plain nets do worse suggests
stacked nonlinear layers find the identity hard to fit, while a residual unit only has
to push its branch to zero. ``identity_fitting`` makes two measurements:

- direct fits (``errors``): fit y = x with k stacked nonlinear units, plain vs residual,
  for each k;
- the construction (``extended_errors``): train a shallow net (``shallow_depth`` units)
  on y = x, extend it by k freshly initialized units of its own kind (inserted after its
  units, before the head), train further, and compare with the shallow net trained for
  the same extra steps (``shallow_continued``).

Fairness: both families are ``reslab.models.mlp`` nets of the same width with He2015's
basic unit (two linear layers, BatchNorm after each, ReLU in between and after the
addition), built from the same seed, so each plain net starts from exactly the weights
of its residual twin; the only difference is the shortcut. Both use the same optimizer
(Adam), learning rate, steps, batch size and data stream per seed. Inputs are
x ~ N(0, I_dim), fresh each step; the remaining error is the mean squared error on a
fixed held-out batch (the target's variance is 1, so it is also the error relative to
predicting 0). Seeds and both families train together with stacked weights
(``torch.func``); Adam acts elementwise, so this equals separate runs.

The default learning rate (3e-2) is chosen by one rule that favours neither family: the best of {1e-3, 3e-3, 1e-2, 3e-2, 1e-1} for the shallowest
net (k = 1, where plain and residual nets fit equally well) after 150 steps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..errors import ConfigError
from ..models.mlp import mlp
from .result import ProbeResult

FAMILIES = {"plain": 0.0, "residual": 1.0}  # the gate on every shortcut (see _Ensemble)


@dataclass
class IdentitySettings:
    """The recipe shared by every family and depth (defaults sized for the quick study)."""

    dim: int = 8
    width: int = 32
    layers_per_unit: int = 2
    steps: int = 150
    batch_size: int = 128
    lr: float = 3e-2
    norm: str = "bn"  # He2015's units: BN after every weight layer ("none" for bare units)
    test_size: int = 1024


@dataclass
class IdentityResult(ProbeResult):
    """Remaining error of y = x per family (axis 0), k (axis 1) and seed (axis 2)."""

    families: list[str]
    ks: np.ndarray  # (K,) units fitted directly / appended to the shallow net
    initial_errors: np.ndarray  # (F, K, S) error at initialization, direct fit
    errors: np.ndarray  # (F, K, S) remaining error after training, direct fit
    half_errors: np.ndarray  # (F, K, S) the same after half the steps: a budget half as long
    shallow_depth: int
    shallow_errors: np.ndarray  # (F, S) shallow net after ``steps``
    shallow_continued: np.ndarray  # (F, S) shallow net after ``steps`` + ``extra_steps``
    extended_start: np.ndarray  # (F, K, S) extended net right after the extension
    extended_errors: np.ndarray  # (F, K, S) extended net after ``extra_steps`` more
    settings: dict
    seconds: float = 0.0
    summary: dict = field(default_factory=dict)


def _batch(gens: list[torch.Generator], n: int, dim: int) -> torch.Tensor:
    return torch.stack([torch.randn(n, dim, generator=g) for g in gens])


class _Ensemble:
    """Nets of one architecture (one per family and seed) trained together with stacked weights.

    Plain and residual ``mlp`` nets have the same parameters, drawn identically from the
    same seed, so both families are built as the residual net and each net's shortcuts are
    multiplied by its gate: 1 (residual) or 0 (plain; post(F(x) + 0 * x) is exactly the
    plain unit post(F(x))). Every pair therefore starts from the same weights.
    """

    def __init__(self, nets: list[nn.Module], gates: list[float]):
        self.base = nets[0]
        params, buffers = stack_module_state(nets)
        self.params = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self.gates = torch.tensor(gates)
        self._gate: torch.Tensor | None = None
        for block in self.base.blocks:
            block.shortcut.register_forward_hook(lambda mod, inp, out: out * self._gate)

    def _one(self, p: dict, b: dict, gate: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self._gate = gate
        return functional_call(self.base, (p, b), (x,))

    def forward(self, x: torch.Tensor, buffers: dict | None = None) -> torch.Tensor:
        """All nets on their own batch x[n]; BatchNorm in training mode updates ``buffers``."""
        return vmap(self._one)(self.params, self.buffers if buffers is None else buffers, self.gates, x)

    def errors(self, x: torch.Tensor) -> np.ndarray:
        """Mean squared error on y = x per net.

        BatchNorm uses the statistics of the evaluation batch itself (1024 samples; the
        running statistics are untouched): running statistics would make an untrained or
        just-extended net look exploded, only because they have not been updated yet.
        """
        with torch.no_grad():
            out = self.forward(x, {k: v.clone() for k, v in self.buffers.items()})
            return ((out - x) ** 2).mean(dim=(1, 2)).double().numpy()

    def train(
        self, gens: list[torch.Generator], s: IdentitySettings, steps: int, x_test: torch.Tensor | None = None
    ) -> np.ndarray | None:
        """Train ``steps`` steps; with ``x_test``, return the errors after the first half of them
        (with a constant rate, the result of a budget half as long: the convergence check)."""
        opt = _adam(list(self.params.values()), s.lr)
        half = None
        for step in range(steps):
            if x_test is not None and step == steps // 2:
                half = self.errors(x_test)
            x = _batch(gens, s.batch_size, s.dim)
            # sum over nets of each net's mean loss: every net gets its own gradient
            loss = F.mse_loss(self.forward(x), x, reduction="none").mean(dim=(1, 2)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return half


def _adam(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch build supports it (the same update either way)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def _net(depth: int, seed: int, s: IdentitySettings) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return mlp(
            depth,
            s.width,
            in_features=s.dim,
            num_classes=s.dim,
            layers_per_block=s.layers_per_unit,
            shortcut="identity",
            norm=s.norm,
            bias=s.norm == "none",  # a bias before BatchNorm does nothing (He2015's convs have none)
            init="he",
        )


def _ensemble(families: Sequence[str], depth: int, seeds: Sequence[int], s: IdentitySettings) -> _Ensemble:
    """One net per (family, seed), family-major; the families share each seed's weights."""
    nets = {seed: _net(depth, seed, s) for seed in seeds}
    return _Ensemble([nets[seed] for _ in families for seed in seeds], [FAMILIES[f] for f in families for _ in seeds])


def _extended(
    shallow: _Ensemble, families: Sequence[str], depth: int, seeds: Sequence[int], s: IdentitySettings
) -> _Ensemble:
    """Deeper nets whose stem, first units and head are copies of the trained shallow nets'."""
    ens = _ensemble(families, depth, seeds, s)
    with torch.no_grad():
        for name, value in {**shallow.params, **shallow.buffers}.items():
            (ens.params if name in ens.params else ens.buffers)[name].copy_(value.detach())
    return ens


def identity_fitting(
    ks: Sequence[int] = (1, 2, 4, 8, 16),
    seeds: int = 3,
    settings: IdentitySettings | None = None,
    shallow_depth: int = 1,
    extra_steps: int | None = None,
    families: Sequence[str] = tuple(FAMILIES),
    first_seed: int = 0,
) -> IdentityResult:
    """He2015's identity argument, measured: direct fits of y = x and the construction.

    ``extra_steps`` (default: ``settings.steps``) is the further training of the extended
    nets and of the shallow control, each with a fresh Adam state.
    """
    s = settings or IdentitySettings()
    ks = sorted({int(k) for k in ks})
    families = list(families)
    if not ks or ks[0] < 1 or seeds < 1 or shallow_depth < 1 or not families or set(families) - set(FAMILIES):
        raise ConfigError(
            f"identity_fitting needs ks >= 1, seeds >= 1, shallow_depth >= 1 and families from {list(FAMILIES)}"
        )
    extra = s.steps if extra_steps is None else int(extra_steps)
    seed_ids = [first_seed + i for i in range(seeds)]
    n_fam = len(families)
    start = time.perf_counter()

    def gens(offset: int) -> list[torch.Generator]:
        """One data stream per seed, the same for every family (nets ordered family-major)."""
        return [torch.Generator().manual_seed(1_000_003 * offset + sd) for _ in families for sd in seed_ids]

    def per_family(values: np.ndarray) -> np.ndarray:
        return values.reshape(n_fam, seeds)

    x_test = _batch(gens(0), s.test_size, s.dim)
    shape = (n_fam, len(ks), seeds)
    init_err, err, half_err, ext_start, ext_err = (np.zeros(shape) for _ in range(5))
    for j, k in enumerate(ks):
        ens = _ensemble(families, k, seed_ids, s)
        init_err[:, j] = per_family(ens.errors(x_test))
        half_err[:, j] = per_family(ens.train(gens(1), s, s.steps, x_test))
        err[:, j] = per_family(ens.errors(x_test))
    base = _ensemble(families, shallow_depth, seed_ids, s)
    base.train(gens(1), s, s.steps)
    shallow = per_family(base.errors(x_test))
    for j, k in enumerate(ks):
        ens = _extended(base, families, shallow_depth + k, [sd + 7919 for sd in seed_ids], s)
        ext_start[:, j] = per_family(ens.errors(x_test))
        ens.train(gens(2), s, extra)
        ext_err[:, j] = per_family(ens.errors(x_test))
    base.train(gens(2), s, extra)
    shallow_cont = per_family(base.errors(x_test))
    result = IdentityResult(
        families=families,
        ks=np.asarray(ks, dtype=np.int64),
        initial_errors=init_err,
        errors=err,
        half_errors=half_err,
        shallow_depth=shallow_depth,
        shallow_errors=shallow,
        shallow_continued=shallow_cont,
        extended_start=ext_start,
        extended_errors=ext_err,
        settings={**s.__dict__, "extra_steps": extra, "seeds": seeds, "first_seed": first_seed, "optimizer": "Adam"},
        seconds=time.perf_counter() - start,
    )
    result.summary = summarize(result)
    return result


def summarize(r: IdentityResult) -> dict:
    """Mean errors per family and k, and the plain/residual ratio at the deepest k."""
    out: dict = {}
    for f, fam in enumerate(r.families):
        out[fam] = {
            "error_mean": r.errors[f].mean(axis=1).tolist(),
            "error_std": r.errors[f].std(axis=1).tolist(),
            "extended_mean": r.extended_errors[f].mean(axis=1).tolist(),
            "shallow_continued_mean": float(r.shallow_continued[f].mean()),
        }
    if {"plain", "residual"} <= set(r.families):
        p, q = r.families.index("plain"), r.families.index("residual")
        out["plain_over_residual_at_deepest_k"] = float(r.errors[p, -1].mean() / r.errors[q, -1].mean())
        out["plain_error_grows_with_k"] = bool(np.all(np.diff(r.errors[p].mean(axis=1)) > 0))
    return out
