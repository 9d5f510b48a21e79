"""Lesions and reordering (Veit2016): cached evaluation must equal naive recomputation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reslab
from reslab.models import BlockNet, block_modes
from reslab.probes.lesion import (
    LesionResult,
    count_branch_calls,
    deletable_blocks,
    kendall_tau,
    lesion_cost,
    lesion_predictions,
    lesion_study,
    swappable_groups,
)

SMALL = dict(in_channels=1, image_size=12)


def _model(name, **kw):
    return reslab.create_model(name, **kw).eval()


@pytest.mark.parametrize(
    "name,kw",
    [
        ("resnet20", SMALL),
        ("plain20", SMALL),
        ("preact110", dict(depth=20, **SMALL)),
        ("resnet20", dict(downsample="B", **SMALL)),  # projection shortcuts on downsampling blocks
        ("resnet20", dict(shortcut="exclusive-gate", **SMALL)),
        ("resnet110_droppath", dict(depth=20, **SMALL)),  # Huang2016: drop-path is off at test time
        ("densenet40", dict(depth=13, **SMALL)),  # transitions are plain shape-changing blocks: not deletable
        ("transformer_preln", dict(depth=2)),
    ],
)
def test_cached_lesions_equal_naive_recomputation_for_every_block(name, kw):
    model = _model(name, **kw)
    x = model.example_input(10)
    base_c, cached = lesion_predictions(model, x, cached=True, batch_size=4)
    base_n, naive = lesion_predictions(model, x, cached=False, batch_size=4)
    assert torch.equal(base_c, base_n)
    assert torch.equal(cached, naive)
    can = deletable_blocks(model)
    assert (cached[can] >= 0).all()
    assert all((cached[j] == -1).all() for j in range(len(model.blocks)) if j not in can)


def test_single_deletion_cost_is_counted_and_below_the_naive_cost():
    model = _model("resnet20", **SMALL)
    x = model.example_input(4)
    n = len(model.blocks)
    for cached, expected in ((True, n * (n + 1) // 2), (False, n * n)):
        with count_branch_calls(list(model.blocks)) as calls:
            lesion_predictions(model, x, cached=cached, batch_size=4)
        assert calls[0] == expected
    cost = lesion_cost(model, x, repeats=1, batch_size=4)
    assert cost["count_ratio"] == pytest.approx((n + 1) / (2 * n))
    assert cost["cached_seconds"] > 0 and cost["naive_seconds"] > 0


def test_kendall_tau():
    assert kendall_tau(list(range(6))) == 1.0
    assert kendall_tau(list(range(6))[::-1]) == -1.0
    assert kendall_tau([1, 0, 2, 3, 4]) == pytest.approx(1 - 2 / 10)  # one discordant pair of 10


def test_swappable_groups_are_the_same_shape_blocks_of_each_stage():
    model = _model("resnet20", **SMALL)
    groups = swappable_groups(model, model.example_input(1))
    assert groups == [[0, 1, 2], [4, 5], [7, 8]]  # blocks 3 and 6 downsample
    assert swappable_groups(_model("resnet20", depth=8, **SMALL), torch.randn(1, 1, 12, 12)) == []


def _trained_mlp(shortcut, steps=150):
    """A residual or plain MLP trained a few seconds on a separable synthetic task."""
    torch.manual_seed(0)
    model = reslab.models.mlp(depth=6, width=32, in_features=8, num_classes=4, shortcut=shortcut, norm="bn")
    w = torch.randn(8, 4)
    x = torch.randn(512, 8)
    y = (x @ w).argmax(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(512, (64,))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x, y


def _naive_error(model, x, y, order, deleted=()):
    """Error of a net rebuilt from the same modules in another order, deletions via skip-only."""
    blocks = [model.blocks[i] for i in order]
    net = BlockNet(model.stem, blocks, model.head, arch={}, input_shape=model.input_shape).eval()
    with torch.no_grad(), block_modes([model.blocks[i] for i in deleted], "skip-only"):
        return float((net(x).argmax(-1) != y).float().mean())


def test_lesion_study_on_a_trained_net_matches_naive_evaluation(tmp_path):
    model, x, y = _trained_mlp("identity")
    result = lesion_study(model, x, y, draws=3, batch_size=100, seed=1)
    n = len(model.blocks)
    assert result.baseline_error == pytest.approx(_naive_error(model, x, y, range(n)))
    assert result.baseline_error < 0.2  # it did learn
    for j in range(n):
        assert result.single_error[j] == pytest.approx(_naive_error(model, x, y, range(n), [j]))
    for i, k in enumerate(result.delete_k):
        for d in range(result.draws):
            deleted = result.delete_blocks[i][d]
            assert len(deleted) == k
            assert result.delete_error[i, d] == pytest.approx(_naive_error(model, x, y, range(n), deleted))
    assert list(result.reorder_k) == [1, 2, 3]
    for i in range(len(result.reorder_k)):
        for d in range(result.draws):
            order = result.reorder_orders[i, d].tolist()
            assert sorted(order) == list(range(n))
            assert result.reorder_tau[i, d] == pytest.approx(kendall_tau(order))
            assert result.reorder_error[i, d] == pytest.approx(_naive_error(model, x, y, order))
    assert result.branch_evals == n * (n + 1) // 2 and result.naive_branch_evals == n * n
    loaded = LesionResult.load(result.save(tmp_path / "lesion"))
    assert np.array_equal(loaded.single_error, result.single_error)
    assert loaded.delete_blocks == result.delete_blocks and np.array_equal(loaded.reorder_orders, result.reorder_orders)
    assert loaded.median_single_increase == result.median_single_increase


def test_deleting_a_block_hurts_a_plain_net_more_than_a_residual_net():
    residual, x, y = _trained_mlp("identity")
    plain, _, _ = _trained_mlp("none")
    r = lesion_study(residual, x, y, delete_k=[], reorder_k=[])
    p = lesion_study(plain, x, y, delete_k=[], reorder_k=[])
    assert r.baseline_error < 0.2 and p.baseline_error < 0.2
    assert np.mean(r.single_error) - r.baseline_error < np.mean(p.single_error) - p.baseline_error


def test_downsampling_blocks_are_marked_and_undeletable_ones_are_nan():
    model = _model("densenet40", depth=13, **SMALL)
    x, y = model.example_input(6), torch.randint(10, (6,))
    result = lesion_study(model, x, y, draws=1, delete_k=[1], reorder_k=[1])
    transitions = [i for i, b in enumerate(model.blocks) if b.shortcut is None]
    assert np.isnan(result.single_error[transitions]).all()
    assert result.downsampling.all()  # every dense layer widens its input
    assert result.reorder_k.size == 0  # nothing keeps its shape, so nothing can be swapped
    resnet = lesion_study(_model("resnet20", **SMALL), torch.randn(6, 1, 12, 12), y, draws=1)
    assert resnet.downsampling.tolist() == [False] * 3 + [True] + [False] * 2 + [True] + [False] * 2


def test_lesion_study_rejects_bad_options_and_non_protocol_models():
    model = _model("resnet20", **SMALL)
    x, y = torch.randn(4, 1, 12, 12), torch.randint(10, (4,))
    with pytest.raises(reslab.ConfigError):
        lesion_study(model, x, y, delete_k=[20])
    with pytest.raises(reslab.ConfigError):
        lesion_study(model, x, y[:2])
    with pytest.raises(reslab.ConfigError):
        lesion_study(nn.Linear(3, 3), torch.randn(2, 3), torch.zeros(2, dtype=torch.long))


def test_bench_measurements_report_counts_wall_clock_and_the_floor(bench_ctx):
    from reslab.probes.ensemble_bench import _lesion

    counted, wall = _lesion("resnet20", 4, 1, bench_ctx)
    assert counted.value == pytest.approx(10 / 18, abs=1e-3) and counted.passed is False  # (n+1)/(2n), n = 9
    assert counted.unit == wall.unit == "x naive" and wall.value > 0 and "branch evaluations" in wall.detail
    assert wall.ratio == wall.value and "x its fp32 floor" in wall.detail


def test_works_on_a_users_own_block_net_with_undeletable_blocks():
    """Five shape-changing plain blocks (no lesion map) and one residual block."""
    from reslab.models import Block

    torch.manual_seed(0)
    blocks = [Block(nn.Sequential(nn.Linear(w, w + 1), nn.ReLU()), None, changes_shape=True) for w in range(4, 9)]
    blocks.append(Block(nn.Sequential(nn.Linear(9, 9), nn.ReLU()), nn.Identity()))
    net = BlockNet(nn.Identity(), blocks, nn.Linear(9, 3), arch={}, input_shape=(4,))
    x, y = torch.randn(20, 4), torch.randint(3, (20,))
    result = lesion_study(net, x, y, draws=2)
    assert deletable_blocks(net) == [5] and list(result.delete_k) == [1]  # k capped by the deletable blocks
    assert np.isnan(result.single_error[:5]).all() and np.isfinite(result.single_error[5])
    assert result.single_error[5] == pytest.approx(_naive_error(net, x, y, range(6), [5]))
    assert result.reorder_k.size == 0


def test_channels_last_evaluation_gives_the_same_lesions_and_leaves_the_layout(monkeypatch):
    from reslab.probes import _evaluation

    torch.manual_seed(0)
    model = reslab.create_model("resnet20", in_channels=3, image_size=16, widths=(8, 8, 8))
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 3, 16, 16, generator=gen), torch.randint(10, (16,), generator=gen)
    assert _evaluation.use_channels_last(model, (3, 16, 16))
    fast = lesion_study(model, x, y, delete_k=[2], reorder_k=[1], draws=2)
    assert all(p.is_contiguous() and not p.is_inference() for p in model.parameters())  # still trainable
    monkeypatch.setattr(_evaluation, "use_channels_last", lambda *a: False)
    plain = lesion_study(model, x, y, delete_k=[2], reorder_k=[1], draws=2)
    np.testing.assert_array_equal(fast.single_error, plain.single_error)
    np.testing.assert_array_equal(fast.delete_error, plain.delete_error)
