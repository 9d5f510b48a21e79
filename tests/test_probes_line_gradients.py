"""Shattered gradients on a net's own inputs: directional derivatives along lines between inputs."""

import numpy as np
import torch
from torch import nn

import reslab
from reslab.models import Block, BlockNet
from reslab.probes.line_gradients import LineGradients, line_gradients


def test_curves_are_the_directional_derivatives_of_each_readout(tmp_path):
    net = reslab.create_model("resnet20", in_channels=1, image_size=8).eval()
    x = torch.randn(4, 1, 8, 8)
    r = line_gradients(net, x, pairs=2, grid=16, seed=1)
    n = len(net.blocks)
    assert r.curves.shape == (n + 2, 2, 16) and len(r.points) == n + 2 and r.space == "input"
    # the logits' read-out at t = 0.4 of pair 1, by reverse mode: grad . (b - a)
    a, b = x[2], x[3]
    point = (a + r.t[6] * (b - a)).unsqueeze(0).requires_grad_()
    gen = torch.Generator().manual_seed(1)
    logits = net(point)
    w = [torch.randn(s, generator=gen, dtype=torch.float64) for s in _shapes(net, x)][-1]
    w = (w / w.norm()).float()
    (logits[0] * w).sum().backward()
    expected = float((point.grad[0] * (b - a)).sum())
    assert np.isclose(r.curves[-1, 1, 6], expected, rtol=1e-4, atol=1e-6)
    assert np.all(r.neighbour_correlation <= 1.0 + 1e-9)
    loaded = LineGradients.load(r.save(tmp_path / "lines"))
    np.testing.assert_array_equal(loaded.curves, r.curves)


def _shapes(net, x):
    with torch.no_grad():
        h = net.stem(x[:1])
        shapes = [h.shape[1:]]
        for block in net.blocks:
            h = block(h)
            shapes.append(h.shape[1:])
        shapes.append(net.head(h).shape[1:])
    return shapes


def test_a_linear_net_gives_constant_curves_and_token_models_use_the_embeddings():
    blocks = [Block(nn.Linear(6, 6), nn.Identity()) for _ in range(2)]
    net = BlockNet(nn.Linear(6, 6), blocks, nn.Linear(6, 3), {}, input_shape=(6,))  # linear: constant gradients
    r = line_gradients(net, torch.randn(4, 6), pairs=2, grid=16)
    assert (r.constant_fraction == 1).all() and np.allclose(r.neighbour_correlation, 1.0)
    assert np.isnan(r.spectral_slope).all()
    tokens = reslab.create_model("transformer_preln", vocab_size=7, seq_len=5)
    r = line_gradients(tokens, torch.randint(7, (4, 5)), pairs=2, grid=16)
    assert r.space == "embedding" and r.constant_fraction[0] == 1  # x_0 is the line itself
