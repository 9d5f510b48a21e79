"""Gradient flow: norms at init (float32 and float64), shortcut shares, layer responses, the recorder."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reslab
from reslab.models import mlp
from reslab.probes.gradflow import (
    GradientNorms,
    LayerResponses,
    ShortcutShares,
    gradient_norms,
    layer_responses,
    shortcut_shares,
    weight_layers,
)
from reslab.probes.gradflow_record import GradientFlowHistory, GradientFlowRecorder
from reslab.train.callbacks import TrainContext


def _manual(net, x, y):
    """Reference: plain autograd with retain_grad on every block boundary."""
    net.zero_grad()
    h = net.stem(x)
    acts = [h]
    for block in net.blocks:
        h = block(h)
        acts.append(h)
    for a in acts:
        a.retain_grad()
    F.cross_entropy(net.head(h), y).backward()
    weights = [p.grad.norm().item() for _, p in weight_layers(net)]
    return weights, [a.grad.norm().item() for a in acts]


def test_gradient_norms_match_plain_autograd():
    net = mlp(depth=6, width=24, in_features=10, norm="bn", shortcut="identity", order="preact")
    x, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    r = gradient_norms(net, x, y)
    weights, acts = _manual(net, x, y)
    assert r.layer_names == [n for n, _ in weight_layers(net)] and len(r.layer_names) == 8
    np.testing.assert_allclose(r.weight_grad_norms, weights, rtol=1e-5)
    np.testing.assert_allclose(r.activation_grad_norms, acts, rtol=1e-5)
    assert r.finite and r.dtype == "float32" and r.activation_grad_norms.shape == (7,)


def test_probe_leaves_the_model_untouched():
    net = mlp(depth=4, width=16, in_features=8, norm="bn")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    gradient_norms(net, torch.randn(8, 8), torch.randint(0, 10, (8,)), dtype=torch.float64)
    gradient_norms(net, torch.randn(8, 8), torch.randint(0, 10, (8,)))
    shortcut_shares(net, torch.randn(8, 8))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "BatchNorm statistics or weights changed"
    assert next(net.parameters()).dtype == torch.float32 and all(p.grad is None for p in net.parameters())


def test_unit_init_overflows_float32_and_float64_shows_the_explosion():
    """The vanishing study's net: 50 hidden layers of width 256 (a factor ~sqrt(256/2) a layer)."""
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    torch.manual_seed(1)
    unit = mlp(depth=50, width=256, init="unit")
    r32, r64 = gradient_norms(unit, x, y), gradient_norms(unit, x, y, dtype=torch.float64)
    assert not r32.finite and r64.finite and r64.dtype == "float64"
    assert 45 < r64.activation_grad_orders < 60  # theory: 50 * log10(sqrt(128)) = 52.7
    small = gradient_norms(mlp(depth=50, width=256, init="small"), x, y, dtype=torch.float64)
    assert small.activation_grad_orders < -40  # factor 0.01 * sqrt(128) = 0.11 a layer
    he = gradient_norms(mlp(depth=50, width=256, init="he"), x, y)
    assert abs(he.activation_grad_orders) < 1
    # bias-free homogeneity: weight gradients stay level even when activation gradients explode
    assert abs(r64.weight_grad_orders) < 3


def test_a_module_without_blocks_gets_weight_norms_only():
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    r = gradient_norms(model, torch.randn(4, 5), torch.randint(0, 3, (4,)))
    assert r.layer_names == ["0.weight", "2.weight"] and r.activation_grad_norms.size == 0
    assert math.isnan(r.activation_grad_orders)


def test_shortcut_shares_split_the_backward_signal():
    torch.manual_seed(3)
    net = mlp(depth=5, width=16, in_features=8, shortcut="identity", order="preact")
    with torch.no_grad():  # block 2's branch deleted: all of its signal must come through the shortcut
        last = net.blocks[2].branch[-1]
        last.weight.zero_()
        last.bias.zero_()
    r = shortcut_shares(net, torch.randn(32, 8), torch.randint(0, 10, (32,)))
    assert r.shortcut_share[2] == 1.0 and r.branch_norms[2] == 0.0
    # identity shortcut, nothing after the addition: the shortcut part at block i's input is
    # exactly the gradient at its output, i.e. at block i+1's input
    np.testing.assert_allclose(r.shortcut_norms[:-1], r.total_norms[1:], rtol=1e-6)
    assert np.all(r.shortcut_norms + r.branch_norms >= r.total_norms * (1 - 1e-6))  # triangle inequality
    assert 0 < r.mean_share < 1 and r.recompute_error < 1e-6
    plain = shortcut_shares(mlp(depth=3, width=8, in_features=4), torch.randn(8, 4))
    assert np.all(plain.shortcut_share == 0) and not plain.has_shortcut.any()


def test_recomputed_blocks_reuse_the_dropout_draws():
    net = mlp(depth=4, width=16, in_features=8, shortcut="dropout", shortcut_dropout=0.5)  # train mode
    r = shortcut_shares(net, torch.randn(32, 8), torch.randint(0, 10, (32,)))
    assert r.recompute_error < 1e-6  # a different dropout mask would give an error of order 1


def test_layer_responses_read_after_batchnorm():
    model = reslab.create_model("resnet20", in_channels=1, image_size=8)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 2.0)
    r = layer_responses(model, torch.randn(16, 1, 8, 8))  # training mode: batch statistics
    assert len(r.layer_names) == 19 and r.after_bn.all()  # stem + 2 per block
    assert r.layer_names[:3] == ["stem.0", "blocks.0.branch.0", "blocks.0.branch.3"]
    np.testing.assert_allclose(r.std, 2.0, rtol=0.02)  # BN output: zero mean, std gamma per channel
    every = layer_responses(model, torch.randn(16, 1, 8, 8), kernel_size=None)
    assert len(every.layer_names) == 20 and not every.after_bn[-1]  # + the classifier, no BN after it


def test_results_round_trip(tmp_path):
    net = mlp(depth=3, width=8, in_features=4, shortcut="identity")
    x = torch.randn(8, 4)
    for result in (
        gradient_norms(net, x),
        shortcut_shares(net, x),
        layer_responses(reslab.create_model("resnet20", in_channels=1, image_size=8), torch.randn(4, 1, 8, 8)),
    ):
        loaded = type(result).load(result.save(tmp_path / type(result).__name__))
        assert isinstance(loaded, (GradientNorms, ShortcutShares, LayerResponses))
        for name, value in vars(result).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(loaded, name), value)
            else:
                assert getattr(loaded, name) == value


def _train_by_hand(net, recorder, steps, run_dir=None, state=None):
    """What the trainer does around callbacks, with a validation pass between steps."""
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    ctx = TrainContext(model=net, optimizer=opt, run_dir=run_dir, step=steps.start)
    gen = torch.Generator().manual_seed(0)
    expected = {}
    recorder.on_start(ctx)
    for step in steps:
        x, y = torch.randn(16, 6, generator=gen), torch.randint(0, 10, (16,), generator=gen)
        weights, acts = _manual(net, x, y)  # forward + backward with reference norms
        ctx.step = step
        if step % recorder.every == 0:
            recorder.on_backward(ctx, 1.0)
            expected[step] = (weights, acts)
        opt.step()
        ctx.step = step + 1
        recorder.on_step(ctx, {})
        with torch.no_grad():
            net(torch.randn(4, 6))  # validation: must not be captured
    recorder.on_end(ctx, {})
    return expected


def test_recorder_builds_layer_by_step_matrices(tmp_path):
    net = mlp(depth=4, width=12, in_features=6, norm="bn", shortcut="identity")
    recorder = GradientFlowRecorder(every=3)
    expected = _train_by_hand(net, recorder, range(8), run_dir=str(tmp_path))
    h = recorder.result()
    assert list(h.steps) == [0, 3, 6]
    assert h.weight_grad_norms.shape == (6, 3) and h.activation_grad_norms.shape == (5, 3)
    for col, step in enumerate(h.steps):
        np.testing.assert_allclose(h.weight_grad_norms[:, col], expected[step][0], rtol=1e-5)
        np.testing.assert_allclose(h.activation_grad_norms[:, col], expected[step][1], rtol=1e-5)
    saved = GradientFlowHistory.load(tmp_path / "probes/gradflow")
    np.testing.assert_array_equal(saved.weight_grad_norms, h.weight_grad_norms)
    assert saved.activation_names == ["x_0", "x_1", "x_2", "x_3", "x_4"]
    assert not any(b._forward_hooks for b in net.blocks)  # hooks removed at the end


def test_recorder_resumes_from_its_state():
    torch.manual_seed(5)
    net = mlp(depth=3, width=8, in_features=6)
    first = GradientFlowRecorder(every=2, filename=None)
    _train_by_hand(net, first, range(4))
    resumed = GradientFlowRecorder(every=2, filename=None)
    resumed.load_state_dict(first.state_dict())
    _train_by_hand(net, resumed, range(4, 7))
    h = resumed.result()
    assert list(h.steps) == [0, 2, 4, 6] and h.weight_grad_norms.shape == (5, 4)
    assert np.isfinite(h.activation_grad_norms).all()


def test_recorder_marks_uncaught_activations_as_nan():
    net = mlp(depth=2, width=8, in_features=6)
    recorder = GradientFlowRecorder(every=1, filename=None)
    ctx = TrainContext(model=net, optimizer=None, run_dir=None, step=0)
    recorder.on_start(ctx)
    recorder._armed = False  # a trainer that never arms the forward pass
    F.cross_entropy(net(torch.randn(4, 6)), torch.randint(0, 10, (4,))).backward()
    recorder.on_backward(ctx, 0.0)
    h = recorder.result()
    assert np.isnan(h.activation_grad_norms).all() and (h.weight_grad_norms > 0).all()
    with pytest.raises(reslab.ConfigError):
        GradientFlowRecorder(every=0)
