"""Shattered gradients (Balduzzi2017, Fig. 1-3): d(output)/d(input) on a 1-D grid.

With depth, a feedforward net's input gradient turns from brown noise (a random walk,
neighbouring inputs get similar gradients) into white noise; a residual net's stays
correlated. ``shattered_gradients`` measures that for several families of width-200 MLPs
with one input and one output, many seeds and every depth 1..max_depth.

Definitions (read them before comparing numbers):
- **Per-input gradient with BatchNorm**: the batch statistics are those of the whole grid,
  held fixed; each grid point's gradient is that of the net whose BatchNorms are the
  fixed affine maps these statistics give (``tangents`` module).
- **Biases**: a ReLU net with no BatchNorm and zero biases is positively homogeneous, so on
  a 1-D input its gradient is constant on each side of 0 and cannot shatter. The families
  without BatchNorm ("ff-bias", "res") therefore get biases drawn from N(0, bias_std^2);
  the BatchNorm families keep zero biases (BatchNorm removes a bias anyway).
- **Depth**: for feedforward families the number of hidden ReLU layers (the stem layer is
  the first; Balduzzi2017's "1-layer feedforward net"); for residual families the number
  of residual units x + W relu(BN(x)) (pre-activation, one weight layer per unit),
  after a linear stem.
- **Readout**: every family's output is a linear function of its last layer's output.
  The residual families therefore have no final BN-ReLU head (``mlp(linear_head=True)``):
  such a head is one more non-residual ReLU layer applied to the whole stream, which the
  feedforward families do not get on top of their depth (it would lower the residual
  families' correlation; claims.md's reference run used the linear readout).
- **Depth sweep**: one net of max_depth per family and seed; the depth-d curve is the
  gradient of head(first d layers) (the prefix of a random deep net is distributed like a
  random net of depth d, and the head is independent of the layers).
- **Neighbour correlation**: lag-1 sample autocorrelation of each curve over the grid,
  averaged over seeds. Curves that are constant up to rounding (the looks-linear net is
  exactly linear at initialization) count as correlation 1 and are counted in
  ``constant_fraction``; their spectrum is excluded (slope NaN when all are constant).

Theory beside the measurements (Balduzzi2017): gradient correlation decays like 2^-L for
feedforward ReLU nets and like L^-1/2 for residual nets with BatchNorm; claims.md notes
that the paper's theorems use BatchNorm, so the 2^-L curve is drawn for "ff-bn" only. An
LL-initialized CReLU net is linear at initialization (correlation 1). The other families
get no theory curve (NaN).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models.mlp import mlp
from .result import ProbeResult
from .spectra import autocorrelation, fit_decay, is_constant, power_spectrum, spectral_slope, theory_curve
from .tangents import stacked_prefix_gradients


@dataclass(frozen=True)
class Family:
    """How one family's nets are built: ``mlp`` arguments plus what the probe adds."""

    name: str
    mlp_args: dict
    stem_is_layer: bool  # the stem ends in a nonlinearity and counts as depth 1
    random_biases: bool  # biases drawn from N(0, bias_std^2) after initialization
    theory: str  # "2^-L", "L^-1/2", "1" or "" (none)
    description: str


_RES = dict(shortcut="identity", order="preact", linear_head=True)
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("ff-bn", dict(norm="bn"), True, False, "2^-L", "feedforward ReLU, He init, BatchNorm"),
        Family("ff-bias", dict(norm="none"), True, True, "", "feedforward ReLU, He init, random biases, no BN"),
        Family("res-bn", dict(_RES, norm="bn"), False, False, "L^-1/2", "residual x + W relu(BN x), He init"),
        Family("res", dict(_RES, norm="none"), False, True, "", "residual x + W relu(x) + b, random biases, no BN"),
        Family("res-bn-beta", dict(_RES, norm="bn"), False, False, "", "residual with BN, branches scaled by beta"),
        Family(
            "ll-crelu",
            dict(activation="crelu", init="looks-linear", norm="none"),
            True,
            False,
            "1",
            "feedforward CReLU, looks-linear init",
        ),
    )
}


def build_family_net(
    family: str, depth: int, seed: int, width: int = 200, beta: float = 0.2, bias_std: float = 0.5
) -> nn.Module:
    """One random net of ``family`` with ``depth`` layers (the probe's definition of depth)."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown shattered-gradient family {family!r}; choose from {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    blocks = depth - 1 if fam.stem_is_layer else depth
    if blocks < 1:
        raise ConfigError(f"family {family} needs depth >= {2 if fam.stem_is_layer else 1}, got {depth}")
    args = dict(fam.mlp_args, branch_scale=beta) if family == "res-bn-beta" else fam.mlp_args
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = mlp(blocks, width, in_features=1, num_classes=1, **args)
        if fam.random_biases:
            with torch.no_grad():
                for m in net.modules():
                    if isinstance(m, nn.Linear) and m.bias is not None:
                        m.bias.normal_(0.0, bias_std)
    return net


@dataclass
class ShatteredResult(ProbeResult):
    """Gradient curves and their statistics, per family (axis 0) and depth (axis 1)."""

    families: list[str]
    depths: np.ndarray  # (D,) 1..max_depth
    grid: np.ndarray  # (N,) the inputs
    detail_depths: np.ndarray  # (K,) depths whose curves and covariances are kept
    curves: np.ndarray  # (F, K, S, N) d(output)/d(input) per seed
    covariance: np.ndarray  # (F, K, N, N) covariance over seeds between grid points
    acf: np.ndarray  # (F, D, N) autocorrelation at lags 0..N-1, mean over seeds
    lag1: np.ndarray  # (F, D) neighbour correlation, mean over seeds
    lag1_std: np.ndarray  # (F, D) its standard deviation over seeds
    spectrum: np.ndarray  # (F, D, N//2) mean power at frequencies 1..N/2
    slope: np.ndarray  # (F, D) log-log slope of the mean spectrum (brown -2, white 0)
    constant_fraction: np.ndarray  # (F, D) share of seeds whose curve is constant
    theory: np.ndarray  # (F, D) theory's lag-1 decay, anchored at depth 1 (NaN: none)
    fits: dict  # family -> fit_decay(...) of lag1 against depth, plus the theory law
    settings: dict
    seconds: dict = dataclasses.field(default_factory=dict)  # wall time: build, gradients, statistics

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    def at(self, family: str, depth: int) -> dict[str, float]:
        """The summary numbers of one family at one depth."""
        f, d = self.families.index(family), int(np.searchsorted(self.depths, depth))
        return {"lag1": float(self.lag1[f, d]), "slope": float(self.slope[f, d])}


@dataclass
class ShatteredSettings:
    """What ``shattered_gradients`` measures: ``seeds`` random nets per family, each of
    ``max_depth`` layers of ``width``, differentiated at ``points`` inputs in ``x_range``.

    The result keeps these (with ``dtype`` and ``device`` as names, without ``detail_depths``,
    which it holds as an array) in ``settings``, with the definitions behind its numbers.
    """

    max_depth: int = 50
    seeds: int = 20
    points: int = 256
    x_range: tuple[float, float] = (-2.0, 2.0)
    width: int = 200
    beta: float = 0.2  # the branch scale of "res-bn-beta"
    bias_std: float = 0.5  # the random biases of the families without BatchNorm
    detail_depths: Sequence[int] = (1, 8, 24, 50)  # depths whose curves and covariances are kept
    first_seed: int = 0
    dtype: torch.dtype = torch.float32
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        if self.max_depth < 2 or self.seeds < 2 or self.points < 8 or self.width < 1:
            raise ConfigError("shattered_gradients needs max_depth >= 2, seeds >= 2, points >= 8, width >= 1")

    def recorded(self) -> dict:
        return dict(
            max_depth=self.max_depth,
            seeds=self.seeds,
            points=self.points,
            x_range=list(self.x_range),
            width=self.width,
            beta=self.beta,
            bias_std=self.bias_std,
            first_seed=self.first_seed,
            dtype=str(self.dtype).replace("torch.", ""),
            device=str(self.device),
            batchnorm="batch statistics of the grid, held fixed",
            depth="feedforward: hidden ReLU layers; residual: residual units",
        )


def shattered_gradients(families: Sequence[str] = tuple(FAMILIES), **settings: Any) -> ShatteredResult:
    """Balduzzi2017 Fig. 1-3: input-gradient curves of random MLPs for families x depths x seeds.

    ``settings`` are the fields of ``ShatteredSettings``; see the module docstring for every
    definition. Cost: one forward pass with tangents per family through a width x width net
    of ``max_depth`` layers, for all seeds at once.
    """
    s = ShatteredSettings(**settings)
    detail = sorted({int(d) for d in s.detail_depths if 1 <= int(d) <= s.max_depth})
    grid = torch.linspace(s.x_range[0], s.x_range[1], s.points, dtype=torch.float64)
    depths = np.arange(1, s.max_depth + 1)
    per_family, build_s, grad_s = [], 0.0, 0.0
    x = grid.to(s.dtype).unsqueeze(1)
    for name in families:
        t0 = time.perf_counter()
        nets = [
            build_family_net(name, s.max_depth, s.first_seed + i, s.width, s.beta, s.bias_std).to(s.device, s.dtype)
            for i in range(s.seeds)
        ]
        t1 = time.perf_counter()
        grads = stacked_prefix_gradients(nets, x, include_stem=FAMILIES[name].stem_is_layer)
        per_family.append(grads.double().cpu().numpy())  # (D, S, N)
        del nets
        build_s, grad_s = build_s + t1 - t0, grad_s + time.perf_counter() - t1
    g = np.stack(per_family)  # (F, D, S, N)
    t_stats = time.perf_counter()
    result = _summarize(g, list(families), depths, grid.numpy(), detail, s.recorded())
    result.seconds = {"build": build_s, "gradients": grad_s, "statistics": time.perf_counter() - t_stats}
    return result


def _summarize(
    g: np.ndarray,
    families: list[str],
    depths: np.ndarray,
    grid: np.ndarray,
    detail: list[int],
    settings: dict,
) -> ShatteredResult:
    acf = autocorrelation(g)  # (F, D, S, N)
    const = is_constant(g)  # (F, D, S)
    spec = power_spectrum(g)
    mask = (~const)[..., None]
    with np.errstate(invalid="ignore"):
        mean_spec = (spec * mask).sum(axis=2) / mask.sum(axis=2)  # NaN where every seed is constant
    lag1 = acf[..., 1].mean(axis=2)
    idx = [int(d) - 1 for d in detail]
    kept = g[:, idx]  # (F, K, S, N)
    centred = kept - kept.mean(axis=2, keepdims=True)
    cov = np.einsum("fksi,fksj->fkij", centred, centred) / (kept.shape[2] - 1)
    theory, fits = [], {}
    for f, name in enumerate(families):
        law = FAMILIES[name].theory
        theory.append(theory_curve(law, depths, lag1[f]))
        fits[name] = {**fit_decay(depths, lag1[f]), "theory": law or "none"}
    return ShatteredResult(
        families=families,
        depths=depths,
        grid=grid,
        detail_depths=np.asarray(detail, dtype=np.int64),
        curves=kept.astype(np.float32),
        covariance=cov.astype(np.float32),
        acf=acf.mean(axis=2).astype(np.float32),
        lag1=lag1,
        lag1_std=acf[..., 1].std(axis=2),
        spectrum=mean_spec,
        slope=spectral_slope(mean_spec),
        constant_fraction=const.mean(axis=2),
        theory=np.stack(theory),
        fits=fits,
        settings=settings,
    )
