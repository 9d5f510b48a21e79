"""Loss landscapes (Li2018): filter-normalized directions, lines, planes, interpolation, roughness."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import reslab
from reslab.probes.curvature import hessian_extremes, negative_curvature_share
from reslab.probes.landscape import (
    LandscapeResult,
    filter_norms,
    loss_interpolation,
    loss_line,
    loss_plane,
    random_direction,
)


def _small_cnn():
    """Conv + BN + linear: every kind of parameter the normalization rule distinguishes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    )


def _data(n=24):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 6, 6, generator=gen), torch.randint(3, (n,), generator=gen)


def _loss_acc(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


def test_direction_filters_have_the_weights_filter_norms_and_bias_bn_entries_are_zero():
    model = reslab.create_model("resnet20", in_channels=1, image_size=8)
    d = random_direction(model, seed=3)
    params = list(model.parameters())
    assert len(d) == len(params)
    checked = 0
    for p, t in zip(params, d):
        assert t.shape == p.shape
        if p.dim() >= 2:  # conv filters (per output channel) and linear rows (per output neuron)
            assert torch.allclose(filter_norms(t), filter_norms(p), rtol=1e-5, atol=1e-7)
            checked += 1
        else:  # biases, BN scales and shifts
            assert (t == 0).all()
    assert checked == 20  # 19 convs + the classifier


def test_bias_bn_directions_copy_the_weights_when_included_and_seeds_are_reproducible():
    model = _small_cnn()
    d = random_direction(model, seed=3, ignore_bias_bn=False)
    for p, t in zip(model.parameters(), d):
        if p.dim() <= 1:
            assert torch.equal(t, p.detach())  # Li2018's code: d = w for biases and BN
    again = random_direction(model, seed=3, ignore_bias_bn=False)
    other = random_direction(model, seed=4, ignore_bias_bn=False)
    assert all(torch.equal(a, b) for a, b in zip(d, again))
    assert not torch.equal(d[0], other[0])


def test_embedding_and_linear_rows_are_normalized_per_output():
    model = reslab.create_model("transformer_preln", depth=1)
    for p, t in zip(model.parameters(), random_direction(model, seed=0)):
        if p.dim() == 2:
            assert torch.allclose(t.norm(dim=1), p.detach().norm(dim=1), rtol=1e-5, atol=1e-7)


def test_the_landscape_at_the_origin_equals_the_models_loss_and_the_model_is_restored():
    model = _small_cnn().train()
    x, y = _data()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss, acc = _loss_acc(model, x, y)
    model.train()
    line = loss_line(model, x, y, steps=5, batch_size=7)
    plane = loss_plane(model, x, y, steps=3, batch_size=7)
    assert line.origin_loss == pytest.approx(loss, rel=1e-5) and line.loss[2] == pytest.approx(loss, rel=1e-5)
    assert plane.loss[1, 1] == pytest.approx(loss, rel=1e-5) and plane.origin_accuracy == pytest.approx(acc)
    assert plane.loss.shape == (3, 3) and list(plane.alphas) == [-1.0, 0.0, 1.0]
    assert line.loss[0] != pytest.approx(loss)  # the weights did move
    assert all(m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_plane_points_are_the_loss_of_the_moved_weights():
    model = _small_cnn()
    x, y = _data()
    d1, d2 = random_direction(model, seed=0), random_direction(model, seed=1)
    plane = loss_plane(model, x, y, directions=(d1, d2), steps=3, span=0.5)
    params = {n: p.detach() for n, p in model.named_parameters()}
    moved = {n: p + 0.5 * a - 0.5 * b for (n, p), a, b in zip(params.items(), d1, d2)}
    model.eval()
    with torch.no_grad():
        expected = F.cross_entropy(functional_call(model, moved, (x,)), y).item()
    assert plane.loss[2, 0] == pytest.approx(expected, rel=1e-5)  # alpha = +0.5, beta = -0.5
    default = loss_plane(model, x, y, steps=3, span=0.5, seed=0)
    assert np.allclose(default.loss, plane.loss)  # default directions: seeds seed, seed + 1


def test_interpolation_between_two_checkpoints():
    model = _small_cnn()
    x, y = _data()
    a = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    b = {k: v.clone() for k, v in model.state_dict().items()}
    loss_b, _ = _loss_acc(model, x, y)
    model.load_state_dict(a)
    loss_a, acc_a = _loss_acc(model, x, y)
    model.load_state_dict(b)
    aliased = loss_interpolation(model, a, model.state_dict(), x, y, steps=5, span=(-0.5, 1.5))
    assert np.isfinite(aliased.loss).all()  # extrapolated BN variances are clamped, not NaN
    assert aliased.loss[-2] == pytest.approx(loss_b, rel=1e-5)  # b given as the model's own (aliased) state
    model.load_state_dict(a)
    result = loss_interpolation(model, a, b, x, y, steps=5, span=(0, 1))
    assert result.kind == "interpolation" and list(result.alphas) == [0, 0.25, 0.5, 0.75, 1]
    assert result.loss[0] == pytest.approx(loss_a, rel=1e-5) and result.loss[-1] == pytest.approx(loss_b, rel=1e-5)
    assert result.origin_accuracy == pytest.approx(acc_a)
    assert loss_b < loss_a
    assert all(torch.equal(v, a[k]) for k, v in model.state_dict().items())  # back to the model's own state
    with pytest.raises(reslab.ConfigError):
        loss_interpolation(model, a, {"x": torch.zeros(1)}, x, y)


def test_recomputed_bn_statistics_equal_a_fresh_pass_over_the_data():
    model = _small_cnn()
    x, y = _data()
    with torch.no_grad():
        model[1].running_mean.fill_(5.0)  # stale statistics: eval-mode loss is off
    stale = loss_line(model, x, y, steps=1, span=0.0).origin_loss
    fresh = loss_line(model, x, y, steps=1, span=0.0, bn="recompute", batch_size=24).origin_loss
    reference = _small_cnn()
    reference.load_state_dict(model.state_dict())
    reference[1].reset_running_stats()
    reference[1].momentum = None
    reference.train()
    with torch.no_grad():
        reference(x)
    expected, _ = _loss_acc(reference, x, y)
    assert fresh == pytest.approx(expected, rel=1e-5) and stale != pytest.approx(fresh)
    assert model[1].running_mean[0] == 5.0  # restored
    with pytest.raises(reslab.ConfigError):
        loss_line(model, x, y, bn="sometimes")


def test_negative_curvature_share():
    g = np.linspace(-1, 1, 11)
    bowl = g[:, None] ** 2 + 2 * g[None, :] ** 2
    assert negative_curvature_share(bowl) == 0.0
    assert negative_curvature_share(-bowl) == 1.0
    ridge = np.cos(6 * g)[:, None] + g[None, :] ** 2  # curves down near the ridge tops along one axis
    assert 0.2 < negative_curvature_share(ridge) < 0.8
    assert negative_curvature_share(g**2) == 0.0 and negative_curvature_share(np.sin(5 * g)) > 0.3
    assert negative_curvature_share(bowl + 1e-9 * np.random.default_rng(0).standard_normal(bowl.shape)) == 0.0
    # losses that explode far from the centre (BN in eval mode) must not hide bumps near it
    g = np.linspace(-1, 1, 21)
    steep = np.exp(8 * (g[:, None] ** 2 + g[None, :] ** 2))  # convex, ~9e6 at the corners
    assert negative_curvature_share(steep) == 0.0
    assert negative_curvature_share(steep + 0.3 * np.cos(30 * g)[:, None]) > 0.05
    assert negative_curvature_share(np.array([1.0, np.nan, 1.0, 2.0, 3.0])) == pytest.approx(2 / 3)  # NaN is rough


def test_hessian_extremes_match_the_exact_hessian_of_a_small_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(16, 3), torch.randint(2, (16,))
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(flat):
        parts, i = {}, 0
        for name, shape in zip(names, shapes):
            parts[name] = flat[i : i + shape.numel()].reshape(shape)
            i += shape.numel()
        return F.cross_entropy(functional_call(model, parts, (x,)), y)

    exact = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat0))
    lo, hi = hessian_extremes(model, x, y, iters=flat0.numel(), batch_size=5)
    assert hi == pytest.approx(exact[-1].item(), rel=1e-3)
    assert lo == pytest.approx(exact[0].item(), rel=1e-3, abs=1e-5)
    assert lo < 0 < hi  # a small tanh net at a random point is not convex
    lo5, hi5 = hessian_extremes(model, x, y, iters=5)
    assert lo5 >= lo - 1e-6 and hi5 <= hi + 1e-6  # Ritz values lie inside the spectrum


def test_landscape_result_round_trips_and_reports_the_hessian(tmp_path):
    model = _small_cnn()
    x, y = _data()
    plane = loss_plane(model, x, y, steps=3, hessian_iters=4, hessian_samples=10)
    assert np.isfinite(plane.hessian_max) and plane.hessian_ratio == pytest.approx(
        abs(plane.hessian_min / plane.hessian_max)
    )
    assert 0.0 <= plane.negative_curvature_share <= 1.0
    loaded = LandscapeResult.load(plane.save(tmp_path / "plane"))
    assert np.array_equal(loaded.loss, plane.loss) and np.array_equal(loaded.betas, plane.betas)
    assert loaded.hessian_max == plane.hessian_max and loaded.kind == "plane"
    line = LandscapeResult.load(loss_line(model, x, y, steps=3).save(tmp_path / "line"))
    assert line.betas.shape == (0,) and line.loss.shape == (3,)


def test_works_on_token_models_with_their_own_loss():
    model = reslab.create_model("transformer_preln", depth=1).eval()
    x = model.example_input(4)
    result = loss_line(model, x, x.clone(), steps=3)  # copy task: per-token targets
    assert np.isfinite(result.loss).all() and 0 <= result.origin_accuracy <= 1


def test_bench_extrapolates_the_grid_time_and_compares_it_with_the_floor(bench_ctx):
    from reslab.probes.ensemble_bench import _landscape

    peak = bench_ctx.peak.peak("fp32")
    m = _landscape(bench_ctx, samples=8, steps=21)
    assert m.unit == "s" and m.value > 0 and "extrapolated from 4 measured points" in m.detail
    floor = 441 * 8 * 61.64e6 / peak  # ResNet-20's forward FLOPs per 28x28 image, at the given peak
    assert m.ratio == pytest.approx(m.value / floor, rel=0.05) and m.reference.startswith("floor")
    assert m.passed == (m.ratio <= 2 and m.value < 300)


def test_an_interrupted_grid_resumes_after_its_last_finished_row(tmp_path, monkeypatch):
    from reslab.probes import landscape

    model, (x, y) = _small_cnn(), _data()
    full = loss_plane(model, x, y, steps=4, span=0.5)
    calls, real = [0], landscape._Evaluator.__call__

    def counted(self):
        calls[0] += 1
        if limit_at[0] is not None and calls[0] > limit_at[0]:
            raise KeyboardInterrupt
        return real(self)

    limit_at = [6]  # stops in the middle of row 1 (4 points per row)
    monkeypatch.setattr(landscape._Evaluator, "__call__", counted)
    with pytest.raises(KeyboardInterrupt):
        loss_plane(model, x, y, steps=4, span=0.5, resume=tmp_path / "grid.npz")
    limit_at[0], calls[0] = None, 0
    resumed = loss_plane(model, x, y, steps=4, span=0.5, resume=tmp_path / "grid.npz")
    assert calls[0] == 12  # row 0 was saved; row 1 is computed again from its start
    np.testing.assert_array_equal(resumed.loss, full.loss)
    calls[0] = 0
    loss_plane(model, x, y, steps=4, span=0.5, resume=tmp_path / "grid.npz")
    assert calls[0] == 0  # a finished grid is read back whole
    loss_plane(model, x, y, steps=4, span=0.6, resume=tmp_path / "grid.npz")
    assert calls[0] == 16  # another setting never reuses saved rows
    with torch.no_grad():
        model[0].weight.mul_(1.5)
    calls[0] = 0
    loss_plane(model, x, y, steps=4, span=0.6, resume=tmp_path / "grid.npz")
    assert calls[0] == 16  # nor do other weights


@pytest.mark.parametrize("probe", ["plane", "interpolation"])
def test_channels_last_evaluation_gives_the_same_surface_and_leaves_the_layout(monkeypatch, probe):
    """The probe may run the net in channels-last (where it pays); the values are those of the
    plain layout, and the net's tensors return to their own layout afterwards."""
    from reslab.probes import _evaluation

    torch.manual_seed(0)
    model = reslab.create_model("resnet20", in_channels=3, image_size=16, widths=(8, 8, 8)).eval()
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(12, 3, 16, 16, generator=gen), torch.randint(10, (12,), generator=gen)
    state = {k: v + 0.01 for k, v in model.state_dict().items()} if probe == "interpolation" else None

    def surface():
        if probe == "plane":
            return loss_plane(model, x, y, steps=3, span=0.5).loss
        return loss_interpolation(model, model.state_dict(), state, x, y, steps=3).loss

    assert _evaluation.use_channels_last(model, (3, 16, 16))
    fast = surface()
    assert all(p.is_contiguous() for p in model.parameters())
    monkeypatch.setattr(_evaluation, "use_channels_last", lambda *a: False)
    np.testing.assert_allclose(fast, surface(), rtol=1e-4)
