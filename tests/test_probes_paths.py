"""Veit2016's path view: exact path counts, the path sampler, and the effective range."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

import reslab
from reslab.models import Block, BlockNet, block_modes
from reslab.models.parts import FixedScale
from reslab.probes.paths import (
    PathResult,
    PathSampler,
    path_counts,
    path_gradients,
    shortest_interval,
    skippable_blocks,
    summed_cross_entropy,
)


@pytest.mark.parametrize("n", [0, 1, 7, 20, 54, 110])
def test_path_counts_sum_to_two_to_the_n_and_match_the_binomial(n):
    counts = path_counts(n)
    assert len(counts) == n + 1 and all(isinstance(c, int) for c in counts)
    assert sum(counts) == 2**n  # exact integers, even where floats would round
    log_pmf = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2) for k in range(n + 1)]
    share = [c / 2**n for c in counts]
    assert np.allclose(np.log(share), log_pmf, rtol=1e-9, atol=1e-9)


def test_path_counts_match_brute_force_enumeration():
    n = 10
    brute = [0] * (n + 1)
    for choice in itertools.product((0, 1), repeat=n):  # 1 = through the branch
        brute[sum(choice)] += 1
    assert path_counts(n) == brute


def test_veit_resnet110_numbers():
    """ResNet-110 has 54 forks (downsampling blocks included); 0.45% of paths are 5-17 blocks long."""
    model = reslab.create_model("resnet110")
    forks = skippable_blocks(model)
    assert len(forks) == 54 and any(model.blocks[i].changes_shape for i in forks)
    counts = path_counts(54)
    assert sum(counts[5:18]) / 2**54 == pytest.approx(0.004537, abs=1e-6)
    lo, hi, held = shortest_interval(np.array(counts, dtype=float), 0.95)
    assert lo >= 19 and hi <= 35 and held >= 0.95  # Veit2016: 95% of paths have length 19-35
    assert skippable_blocks(reslab.create_model("plain20")) == []


def test_shortest_interval():
    assert shortest_interval([0, 1, 8, 1, 0], 0.8) == (2, 2, 0.8)
    lo, hi, held = shortest_interval([1, 1, 1, 1], 0.5)
    assert hi - lo == 1 and held == pytest.approx(0.5)
    assert shortest_interval([5, 0, 0, 5], 1.0)[:2] == (0, 3)
    with pytest.raises(reslab.ConfigError):
        shortest_interval([1, 2], 0)


def _preact():
    return reslab.create_model("preact110", depth=20, in_channels=1, image_size=12).eval()


def test_zero_length_paths_carry_the_gradient_of_the_all_skip_only_net():
    """k = 0: the signal passes every shortcut only, so the gradient is the skip-only net's."""
    model = _preact()
    x, y = torch.randn(4, 1, 12, 12), torch.randint(10, (4,))
    sampler = PathSampler(model, x, y)
    got = sampler.input_gradient(set())
    h = model.stem(x).detach().requires_grad_()
    with block_modes(model.blocks, "skip-only"):
        out = model.forward_blocks(h)
    (out * sampler.upstream).sum().backward()
    assert torch.allclose(got, h.grad, atol=1e-6)
    assert got.abs().sum() > 0
    # and the full gradient is different: the branches do carry signal
    full = sampler.input_gradient(set(range(len(model.blocks))))
    assert not torch.allclose(full, got, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet20", "preact110"])
def test_cached_sampler_equals_a_naive_backward_for_any_path(name):
    """Any path through the cached graphs equals a fresh forward/backward with the routing modes."""
    model = reslab.create_model(name, depth=20, in_channels=1, image_size=12).eval()
    x, y = torch.randn(3, 1, 12, 12), torch.randint(10, (3,))
    sampler = PathSampler(model, x, y)
    gen = torch.Generator().manual_seed(1)
    for k in (0, 3, 6, 9):
        chosen = set(torch.randperm(9, generator=gen)[:k].tolist())
        modes = ["grad-branch-only" if i in chosen else "grad-skip-only" for i in range(9)]
        h = model.stem(x).detach().requires_grad_()
        with block_modes(model.blocks, modes):
            loss = summed_cross_entropy(model.head(model.forward_blocks(h)), y)
        loss.backward()
        assert torch.allclose(sampler.input_gradient(chosen), h.grad, rtol=1e-4, atol=1e-6), k


def _scaled_residual_mlp(n=8, scale=0.1, width=6):
    """Each branch multiplies by `scale`, so a path through k branches carries exactly scale^k."""
    blocks = [Block(FixedScale(scale), nn.Identity()) for _ in range(n)]
    return BlockNet(nn.Linear(4, width), blocks, nn.Linear(width, 3), arch={}, input_shape=(4,))


def test_path_magnitudes_decay_exactly_geometrically_in_a_linear_net():
    model = _scaled_residual_mlp()
    x, y = torch.randn(8, 4), torch.randint(3, (8,))
    result = path_gradients(model, x, y, samples_per_length=3, batch_size=4, share=0.9)
    ratios = result.magnitude[1:] / result.magnitude[:-1]
    assert np.allclose(ratios, 0.1, rtol=1e-4)
    assert result.log10_decay_per_block == pytest.approx(-1.0, abs=1e-4) and result.decay_r2 == pytest.approx(1.0)
    # contribution of length k is C(8, k) 0.1^k: shares 0.466, 0.373, 0.131, 0.026, ...
    expected = np.array([math.comb(8, k) * 0.1**k for k in range(9)])
    assert np.allclose(result.contribution_share, expected / expected.sum(), rtol=1e-4)
    assert result.effective_range == [0, 2] and result.effective_share >= 0.9
    assert result.effective_path_share == pytest.approx((1 + 8 + 28) / 256)
    assert result.path_range[0] <= 4 <= result.path_range[1]


def test_path_gradients_result_round_trips_and_is_seeded(tmp_path):
    model = _preact()
    x, y = torch.randn(6, 1, 12, 12), torch.randint(10, (6,))
    a = path_gradients(model, x, y, samples_per_length=2, batch_size=3, seed=3)
    b = path_gradients(model, x, y, samples_per_length=2, batch_size=3, seed=3)
    assert a.num_blocks == 9 and a.samples.shape == (10, 2) and np.isfinite(a.samples).all()
    assert np.allclose(a.samples, b.samples)
    assert a.contribution_share.sum() == pytest.approx(1.0)
    assert 0 <= a.effective_range[0] <= a.effective_range[1] <= 9
    loaded = PathResult.load(a.save(tmp_path / "paths"))
    assert loaded.counts == a.counts and loaded.effective_range == a.effective_range
    assert np.array_equal(loaded.samples, a.samples) and np.array_equal(loaded.lengths, a.lengths)
    assert all(not m.training for m in model.modules()) and all(blk.mode == "full" for blk in model.blocks)


def test_path_probe_restores_training_mode_and_rejects_non_protocol_models():
    model = _preact().train()
    path_gradients(model, torch.randn(2, 1, 12, 12), torch.randint(10, (2,)), samples_per_length=1, batch_size=2)
    assert all(m.training for m in model.modules())
    with pytest.raises(reslab.ConfigError):
        path_gradients(nn.Linear(2, 2), torch.randn(2, 2), torch.zeros(2, dtype=torch.long))
