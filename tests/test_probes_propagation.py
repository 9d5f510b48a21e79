"""Signal propagation (He2016 Sec. 3): analytic cases, the identity term, modified shortcuts."""

import numpy as np
import pytest
import torch
from torch import nn

import reslab
from reslab.models import mlp
from reslab.probes.propagation import Propagation, scaled_branches, signal_propagation

X, Y = torch.randn(32, 12), torch.randint(0, 10, (32,))


def _preact(**kw):
    torch.manual_seed(0)
    return mlp(depth=7, width=16, in_features=12, order="preact", **kw)


@pytest.mark.parametrize("norm", ["none", "bn"])
def test_zeroed_branches_give_ratio_exactly_one_for_identity_shortcuts(norm):
    net = _preact(shortcut="identity", norm=norm)
    r = signal_propagation(net, X, Y, branch_scale=0.0)
    np.testing.assert_allclose(r.ratio, 1.0, rtol=1e-12)
    np.testing.assert_allclose(r.identity_share, 1.0, rtol=1e-12)
    with torch.no_grad():  # the same with the branches' last layers really zeroed
        for block in net.blocks:
            block.branch[-1].weight.zero_()
            block.branch[-1].bias.zero_()
    np.testing.assert_allclose(signal_propagation(net, X, Y).ratio, 1.0, rtol=1e-12)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (None, 1e-5)])
def test_zeroed_branches_give_lambda_to_the_k_for_scaled_shortcuts(dtype, rtol):
    lam = 0.7
    r = signal_propagation(_preact(shortcut="scale", shortcut_scale=lam), X, Y, branch_scale=0.0, dtype=dtype)
    k = np.arange(7, -1, -1)  # blocks between x_l and x_L
    np.testing.assert_allclose(r.ratio, lam**k, rtol=rtol)
    np.testing.assert_allclose(r.identity_share, 1.0, rtol=1e-12)  # Π λ ∂E/∂x_L is the whole gradient


def test_lambda_to_the_k_inside_a_cnn_stage():
    torch.manual_seed(0)
    net = reslab.create_model("resnet20", shortcut="scale", shortcut_scale=0.5, order="preact", in_channels=1)
    r = signal_propagation(net, torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,)), branch_scale=0.0)
    same = [i for i, b in enumerate(net.blocks) if not b.changes_shape]
    assert len(same) == 7 and r.changes_shape.sum() == 2
    np.testing.assert_allclose(r.ratio[same] / r.ratio[[i + 1 for i in same]], 0.5, rtol=1e-6)


def test_identity_term_is_the_top_gradient_and_the_rest_is_the_branches():
    r = signal_propagation(_preact(shortcut="identity"), X, Y)
    np.testing.assert_allclose(r.identity_norms, r.grad_norms[-1], rtol=1e-6)  # d_l = ∂E/∂x_L for every l
    assert r.branch_norms[-1] == 0 and np.all(r.branch_norms[:-1] > 0)
    assert np.all(np.diff(r.identity_share) >= -1e-9)  # more branches below x_l: smaller identity share
    small = signal_propagation(_preact(shortcut="identity"), X, Y, branch_scale=0.01)
    assert small.identity_share.min() > 0.95 and np.allclose(small.ratio, 1.0, atol=0.05)


def test_plain_stack_has_no_identity_term():
    r = signal_propagation(_preact(shortcut="none"), X, Y)
    assert np.all(r.identity_norms[:-1] == 0) and np.all(r.identity_share[:-1] == 0)
    assert r.identity_share[-1] == 1.0 and not r.has_shortcut.any()


def test_plain_stack_collapses_when_branches_shrink():
    """A plain layer scaled by s passes s times the signal: ratio s^k (no BN, no bias)."""
    r = signal_propagation(_preact(shortcut="none", bias=False), X, Y, branch_scale=0.1, dtype=torch.float64)
    assert r.bottom_ratio < 1e-5 and r.min_ratio == r.bottom_ratio


@pytest.mark.parametrize(
    "shortcut,downsample",
    [("identity", "A"), ("identity", "B")]
    + [(s, "A") for s in ("scale", "exclusive-gate", "shortcut-gate", "projection", "dropout", "none")],
)
def test_he2016_shortcuts(shortcut, downsample):
    torch.manual_seed(0)
    net = reslab.create_model("resnet20", shortcut=shortcut, downsample=downsample, in_channels=1)  # dropout is live
    x, y = torch.randn(4, 1, 12, 12), torch.randint(0, 10, (4,))
    a, b = (signal_propagation(net, x, y, seed=3) for _ in range(2))
    assert a.ratio.shape == (10,) and np.isfinite(a.ratio).all() and a.ratio[-1] == 1.0
    np.testing.assert_array_equal(a.ratio, b.ratio)  # same seed, same dropout draws
    assert (a.identity_norms[:-1] == 0).all() == (shortcut == "none")


def test_no_side_effects_and_hooks_are_removed():
    net = _preact(shortcut="identity", norm="bn")
    out = net.eval()(X).detach()
    before = {k: v.clone() for k, v in net.train().state_dict().items()}
    signal_propagation(net, X, Y, branch_scale=0.1)  # in training mode: BN would update its statistics
    with pytest.raises(RuntimeError), scaled_branches(net, 0.5):
        raise RuntimeError("boom")
    assert all(not b.branch._forward_hooks and not b._forward_hooks for b in net.blocks)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert torch.equal(net.eval()(X).detach(), out) and all(b.mode == "full" for b in net.blocks)


def test_needs_a_block_net_and_round_trips(tmp_path):
    with pytest.raises(reslab.ConfigError):
        signal_propagation(nn.Linear(3, 3), torch.randn(2, 3))
    r = signal_propagation(_preact(shortcut="identity"), X, None, branch_scale=0.1)
    loaded = Propagation.load(r.save(tmp_path / "prop"))
    np.testing.assert_array_equal(loaded.ratio, r.ratio)
    assert loaded.branch_scale == 0.1 and loaded.dtype == "float32" and loaded.loss == r.loss
