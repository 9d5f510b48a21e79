"""Identity fitting (He2015's construction argument): fairness of the set-up, shapes, round trip."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reslab
from reslab.models import mlp
from reslab.probes.identity import (
    IdentityResult,
    IdentitySettings,
    _adam,
    _batch,
    _ensemble,
    _extended,
    identity_fitting,
)

TINY = IdentitySettings(dim=4, width=12, steps=40, batch_size=32, test_size=256)


def test_plain_twin_is_the_zoo_plain_net_with_the_same_weights():
    """Gate 0 on the shortcuts computes exactly ``mlp(shortcut="none")``, from identical weights."""
    ens = _ensemble(["plain", "residual"], 3, [5], TINY)
    torch.manual_seed(5)
    plain = mlp(3, 12, in_features=4, num_classes=4, layers_per_block=2, shortcut="none", norm="bn", bias=False)
    for name, value in plain.named_parameters():
        assert torch.equal(ens.params[name][0], value) and torch.equal(ens.params[name][1], value)
    x = torch.randn(2, 64, 4)
    out = ens.forward(x)
    torch.testing.assert_close(out[0], plain(x[0]), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out[1], plain(x[1]), atol=1e-3)  # the residual twin differs


def test_training_together_equals_training_apart():
    """Adam is elementwise, so stacked nets train exactly as separate runs would."""
    ens = _ensemble(["plain", "residual"], 2, [1], TINY)
    singles = []
    for gate in (0.0, 1.0):
        torch.manual_seed(1)
        net = mlp(2, 12, in_features=4, num_classes=4, layers_per_block=2, shortcut="identity", norm="bn", bias=False)
        for block in net.blocks:
            block.shortcut.register_forward_hook(lambda m, i, o, g=gate: o * g)
        singles.append(net)
    gens = [torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)]
    ens.train(gens, TINY, 5)
    gens = [torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)]
    opts = [_adam(list(n.parameters()), TINY.lr) for n in singles]
    for _ in range(5):
        x = _batch(gens, TINY.batch_size, TINY.dim)
        for i, (net, opt) in enumerate(zip(singles, opts)):
            opt.zero_grad()
            F.mse_loss(net(x[i]), x[i]).backward()
            opt.step()
    for i, net in enumerate(singles):
        for name, value in net.named_parameters():
            torch.testing.assert_close(ens.params[name][i].detach(), value.detach(), rtol=1e-4, atol=1e-5)


def test_extension_copies_the_shallow_net_and_adds_fresh_units():
    shallow = _ensemble(["plain", "residual"], 1, [0, 1], TINY)
    shallow.train([torch.Generator().manual_seed(i) for i in range(4)], TINY, 3)
    ext = _extended(shallow, ["plain", "residual"], 4, [7, 8], TINY)
    for name, value in shallow.params.items():
        assert torch.equal(ext.params[name], value.detach()), name
    for name, value in shallow.buffers.items():  # BatchNorm statistics come along
        assert torch.equal(ext.buffers[name], value), name
    assert "blocks.3.branch.0.weight" in ext.params and "blocks.3.branch.0.weight" not in shallow.params
    assert ext.gates.tolist() == [0.0, 0.0, 1.0, 1.0]  # plain rows first, then residual


def test_identity_fitting_returns_errors_per_family_k_and_seed(tmp_path):
    r = identity_fitting(ks=(1, 3), seeds=2, settings=TINY, extra_steps=20)
    assert r.errors.shape == (2, 2, 2) and r.extended_errors.shape == (2, 2, 2)
    assert r.shallow_errors.shape == (2, 2) and r.shallow_continued.shape == (2, 2)
    assert (r.errors < r.initial_errors).all()  # training fits something in every case
    assert (r.shallow_continued < r.shallow_errors).all()
    assert r.settings["optimizer"] == "Adam" and r.settings["extra_steps"] == 20
    assert set(r.summary) >= {"plain", "residual", "plain_over_residual_at_deepest_k"}
    loaded = IdentityResult.load(r.save(tmp_path / "identity"))
    np.testing.assert_array_equal(loaded.errors, r.errors)
    assert loaded.summary == r.summary and loaded.families == ["plain", "residual"]


def test_bad_arguments():
    for kwargs in ({"ks": (0,)}, {"seeds": 0}, {"families": ("highway",)}, {"shallow_depth": 0}):
        with pytest.raises(reslab.ConfigError):
            identity_fitting(settings=TINY, **kwargs)
