"""Shattered gradients (Balduzzi2017): statistics on known noise, per-input gradients, the theory checks."""

import numpy as np
import pytest
import torch
from torch import nn

import reslab
from reslab.probes.shattered import FAMILIES, ShatteredResult, build_family_net, shattered_gradients
from reslab.probes.signal_bench import shattered_measurement
from reslab.probes.spectra import autocorrelation, fit_decay, is_constant, power_spectrum, spectral_slope
from reslab.probes.tangents import StackedNets, input_gradients, stacked_prefix_gradients

# torch.func.jvp's first use scripts some decompositions, and torch warns about that itself
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

GRID = torch.linspace(-2, 2, 256, dtype=torch.float64).unsqueeze(1)


def test_statistics_tell_white_from_brown_noise():
    rng = np.random.default_rng(0)
    white = rng.standard_normal((64, 256))
    brown = np.cumsum(white, axis=-1)
    assert abs(spectral_slope(power_spectrum(white).mean(0))) < 0.2
    assert -2.3 < spectral_slope(power_spectrum(brown).mean(0)) < -1.7
    assert abs(autocorrelation(white)[:, 1].mean()) < 0.02 and autocorrelation(brown)[:, 1].mean() > 0.9
    acf = autocorrelation(white[:1])[0]  # the FFT route equals the textbook sum
    c = white[0] - white[0].mean()
    np.testing.assert_allclose(acf[5], (c[:-5] * c[5:]).sum() / (c * c).sum(), rtol=1e-10)
    constant = np.full((2, 256), 3.0) + 1e-9 * rng.standard_normal((2, 256))  # rounding noise only
    assert is_constant(constant).all() and (autocorrelation(constant) == 1).all()


def test_decay_fits_recover_the_laws():
    d = np.arange(1, 30)
    exp = fit_decay(d, 0.9 * 0.5**d, floor=1e-12)
    assert exp["exp_rate"] == pytest.approx(0.5) and exp["better"] == "exponential"
    power = fit_decay(d, 0.8 * d**-0.5)
    assert power["power_exponent"] == pytest.approx(0.5) and power["better"] == "power"
    assert np.isnan(fit_decay(d, np.zeros(29))["exp_rate"])  # nothing above the noise floor


def _reference_gradient(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One input at a time with plain autograd; BatchNorm fixed to the grid's statistics."""
    stats = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out: stats.__setitem__(mod, (inp[0].mean(0), inp[0].var(0, unbiased=False)))
        )
        for m in net.modules()
        if isinstance(m, nn.BatchNorm1d)
    ]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    frozen = net.eval()
    for m, (mean, var) in stats.items():
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
    grads = []
    for i in range(len(x)):
        xi = x[i : i + 1].clone().requires_grad_()
        (g,) = torch.autograd.grad(frozen(xi).sum(), xi)
        grads.append(g[0, 0])
    return torch.stack(grads)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_batched_gradients_match_a_loop_of_single_inputs(family):
    nets = [build_family_net(family, 5, seed, width=24).double() for seed in range(3)]
    x = GRID[::8]
    g = stacked_prefix_gradients(nets, x, include_stem=FAMILIES[family].stem_is_layer)
    assert g.shape == (5, 3, 32)  # depths 1..5
    for s in (0, 2):
        ref = input_gradients(nets[s], x)  # torch.func.jvp on the whole net
        np.testing.assert_allclose(g[-1, s].numpy(), ref.numpy(), rtol=1e-9, atol=1e-12)
        loop = _reference_gradient(nets[s], x)
        np.testing.assert_allclose(g[-1, s].numpy(), loop.numpy(), rtol=1e-9, atol=1e-12)


def test_prefix_gradients_equal_those_of_the_shallower_net():
    """Depth d read off a deep net = the gradient of the depth-d net with the same layers and head."""
    deep = build_family_net("res-bn", 6, 0, width=24).double()
    g = stacked_prefix_gradients([deep], GRID[::4], include_stem=False)
    for depth in (1, 3):
        shallow = build_family_net("res-bn", depth, 1, width=24).double()
        state = {
            k: v for k, v in deep.state_dict().items() if not k.startswith("blocks.") or int(k.split(".")[1]) < depth
        }
        shallow.load_state_dict(state)
        np.testing.assert_allclose(g[depth - 1, 0].numpy(), input_gradients(shallow, GRID[::4]).numpy(), rtol=1e-9)


def test_one_layer_nets_are_brown():
    r = shattered_gradients(families=("ff-bn", "ff-bias"), max_depth=2, seeds=8, detail_depths=(1,))
    assert (r.slope[:, 0] < -1.5).all(), r.slope[:, 0]
    assert (r.lag1[:, 0] > 0.9).all()


def test_deep_feedforward_is_white_and_deep_residual_is_not():
    r = shattered_gradients(families=("ff-bn", "res-bn"), max_depth=50, seeds=8, detail_depths=(1, 50))
    ff, res = r.at("ff-bn", 50), r.at("res-bn", 50)
    assert abs(ff["lag1"]) < 0.2 and abs(ff["slope"]) < 0.5, ff
    assert res["lag1"] > 0.5 and res["slope"] < -0.6, res
    assert r.fits["ff-bn"]["theory"] == "2^-L" and r.fits["res-bn"]["theory"] == "L^-1/2"
    np.testing.assert_allclose(r.theory[0, :3], r.lag1[0, 0] * np.array([1, 0.5, 0.25]))
    assert r.curves.shape == (2, 2, 8, 256) and r.covariance.shape == (2, 2, 256, 256)
    np.testing.assert_allclose(np.diagonal(r.covariance[1, 1]), r.curves[1, 1].var(axis=0, ddof=1), rtol=1e-4)
    assert r.acf.shape == (2, 50, 256) and np.allclose(r.acf[..., 0], 1.0)
    assert set(r.seconds) == {"build", "gradients", "statistics"} and r.total_seconds > 0


def test_looks_linear_net_is_linear_at_initialization(tmp_path):
    r = shattered_gradients(families=("ll-crelu",), max_depth=6, seeds=3, detail_depths=(6,))
    assert (r.constant_fraction == 1).all() and (r.lag1 == 1).all() and np.isnan(r.slope).all()
    loaded = ShatteredResult.load(r.save(tmp_path / "shattered"))
    np.testing.assert_array_equal(loaded.lag1, r.lag1)
    np.testing.assert_array_equal(loaded.covariance, r.covariance)
    assert loaded.fits == r.fits and loaded.settings == r.settings and loaded.families == ["ll-crelu"]
    assert loaded.settings["batchnorm"] == "batch statistics of the grid, held fixed"


def test_no_bias_relu_net_is_homogeneous_which_is_why_the_probe_adds_biases():
    """The pitfall in claims.md: without BN or biases the gradient is constant on each side of 0."""
    torch.manual_seed(0)
    net = reslab.models.mlp(depth=6, width=32, in_features=1, num_classes=1).double()  # zero biases
    g = input_gradients(net, GRID)
    left, right = g[GRID[:, 0] < 0], g[GRID[:, 0] > 0]
    assert torch.allclose(left, left[0]) and torch.allclose(right, right[0])
    biased = input_gradients(build_family_net("ff-bias", 7, 0, width=32).double(), GRID)
    assert len(torch.unique(biased.round(decimals=9))) > 3


def test_bench_measurement_reports_the_sweep():
    m = shattered_measurement(families=("ff-bn", "res"), max_depth=3, seeds=2, points=16, width=8)
    assert m.name == "shattered: depths 1-3 x 2 families x 2 seeds x 16 points" and m.unit == "s"
    assert m.value > 0 and m.passed is True and "load average" in m.detail


def test_bench_measurement_compares_the_sweep_with_its_floor(bench_ctx):
    m = shattered_measurement(bench_ctx, families=("ff-bn",), max_depth=3, seeds=4, points=16, width=8)
    assert m.reference.startswith("floor") and m.ratio > 1  # no sweep beats its matrix multiplies at the peak


def test_bad_arguments():
    with pytest.raises(reslab.ConfigError):
        shattered_gradients(families=("nope",), max_depth=3, seeds=2)
    with pytest.raises(reslab.ConfigError):
        input_gradients(nn.Linear(2, 1), torch.randn(4, 2))
    with pytest.raises(reslab.ConfigError):
        StackedNets([nn.Sequential(nn.Linear(1, 4), nn.GELU())]).run(nn.GELU(), torch.zeros(1, 4, 2, 3))
