"""The block protocol, the parts and the unit orders, checked against what they must compute."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reslab
from reslab.models import Block, BlockNet, block_modes, mlp, set_modes
from reslab.models.merges import Concat, Gate
from reslab.models.parts import DropPath, OptionA

SMALL = [n for n in reslab.list_models() if n not in {"resnet1202", "plain1202", "preact1001"}]


@pytest.mark.parametrize("name", SMALL)
def test_forward_blocks_composes_to_forward(name):
    model = reslab.create_model(name).eval()
    if not isinstance(model, BlockNet):
        pytest.skip("recurrent nets are not block nets")
    x = model.example_input(3)
    with torch.no_grad():
        assert torch.equal(model.head(model.forward_blocks(model.stem(x), 0, len(model.blocks))), model(x))
        half = len(model.blocks) // 2
        h = model.forward_blocks(model.stem(x), 0, half)
        assert torch.equal(model.head(model.forward_blocks(h, half)), model(x))


@pytest.mark.parametrize("name", ["resnet20", "preact110", "resnet110_droppath", "transformer_preln", "mlp_residual"])
def test_all_skip_only_computes_the_shortcuts_alone(name):
    model = reslab.create_model(name).eval()
    x = model.example_input(3)
    with torch.no_grad():
        h = model.stem(x)
        for block in model.blocks:
            h = block.shortcut(h)
        expected = model.head(h)
        before = model(x)
        with block_modes(model.blocks, "skip-only"):
            assert torch.allclose(model(x), expected)
        assert all(b.mode == "full" for b in model.blocks)
        assert torch.equal(model(x), before)


def test_modes_restore_even_after_an_error():
    model = reslab.create_model("resnet20")
    with pytest.raises(RuntimeError), block_modes(model.blocks, "skip-only"):
        raise RuntimeError("boom")
    assert all(b.mode == "full" for b in model.blocks)
    with pytest.raises(reslab.ConfigError):
        model.blocks[0].mode = "sideways"


def test_branch_only_and_gradient_routing_modes():
    model = reslab.create_model("preact110", depth=20).eval()
    block = model.blocks[1]
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        f, s = block.branch(x), block.shortcut(x)
        block.mode = "branch-only"
        assert torch.allclose(block(x), f)
        for mode in ("grad-skip-only", "grad-branch-only"):
            block.mode = mode  # forward values are the full ones
            assert torch.allclose(block(x), f + s)
    set_modes(model.blocks, "full")
    xg = x.clone().requires_grad_()
    block.mode = "grad-skip-only"
    block(xg).sum().backward()
    assert torch.allclose(xg.grad, torch.ones_like(x))  # identity only: d(sum)/dx = 1


def test_path_routing_with_no_branches_equals_the_skip_only_net():
    """Veit2016's sampling: forward through all blocks, backward through shortcuts only.

    In a pre-activation net (no op after the addition) the gradient from the last block's
    output to the first block's input must then equal that of the net whose blocks are
    all deleted, whatever the forward values are.
    """
    model = reslab.create_model("preact110", depth=20).eval()
    h = model.stem(model.example_input(2)).detach()
    v = torch.randn_like(model.forward_blocks(h))

    def input_grad(mode):
        hi = h.clone().requires_grad_()
        with block_modes(model.blocks, mode):
            (model.forward_blocks(hi) * v).sum().backward()
        return hi.grad

    assert torch.allclose(input_grad("grad-skip-only"), input_grad("skip-only"))
    assert not torch.allclose(input_grad("full"), input_grad("skip-only"), atol=1e-4)


def test_plain_block_skip_only_is_identity_or_option_a():
    model = reslab.create_model("plain20").eval()
    x = torch.randn(2, 16, 8, 8)
    same, down = model.blocks[0], model.blocks[3]
    assert not same.changes_shape and down.changes_shape
    with block_modes([same, down], "skip-only"), torch.no_grad():
        assert torch.equal(same(x), x)
        assert torch.equal(down(x), OptionA(16, 32)(x))


def test_option_a_subsamples_and_zero_pads():
    x = torch.randn(2, 4, 6, 6)
    y = OptionA(4, 8, 2)(x)
    assert y.shape == (2, 8, 3, 3)
    assert torch.equal(y[:, 2:6], x[:, :, ::2, ::2])
    assert y[:, :2].abs().sum() == 0 and y[:, 6:].abs().sum() == 0
    assert not list(OptionA(4, 8).parameters())


def test_gates_and_highway():
    gate = Gate(nn.Linear(3, 3), bias=-2.0)
    f, x = torch.randn(4, 3), torch.randn(4, 3)
    g = torch.sigmoid(gate.gate_layer(x))
    assert torch.allclose(gate(f, x, x), g * f + (1 - g) * x)  # Srivastava2015 eq. 3
    assert torch.allclose(gate.skip_only(x, x), (1 - g) * x)
    assert torch.allclose(gate.gate_layer.bias, torch.full((3,), -2.0))
    only = Gate(nn.Linear(3, 3), bias=0.0, kind="shortcut-only")
    g = torch.sigmoid(only.gate_layer(x))
    assert torch.allclose(only(f, x, x), f + (1 - g) * x)


def test_dense_block_concatenates_and_skip_only_keeps_the_shape():
    model = reslab.create_model("densenet40", depth=13).eval()
    block = model.blocks[0]
    assert isinstance(block.merge, Concat)
    x = model.stem(model.example_input(2))
    with torch.no_grad():
        y = block(x)
        assert y.shape[1] == x.shape[1] + 12 and torch.equal(y[:, : x.shape[1]], x)
        block.mode = "skip-only"
        z = block(x)
        assert z.shape == y.shape and torch.equal(z[:, : x.shape[1]], x) and z[:, x.shape[1] :].abs().sum() == 0


def _types(module):
    return [type(m) for m in module.modules() if not isinstance(m, (nn.Sequential, nn.Identity))]


@pytest.mark.parametrize(
    "order,branch,post",
    [
        ("post", "C N R C N", "R"),
        ("bn-after-add", "C N R C", "N R"),
        ("relu-before-add", "C N R C N R", ""),
        ("relu-preact", "R C N R C N", ""),
        ("preact", "N R C N R C", ""),
    ],
)
def test_unit_orders_follow_he2016_table2(order, branch, post):
    code = {nn.Conv2d: "C", nn.BatchNorm2d: "N", nn.ReLU: "R"}
    block = reslab.create_model("resnet20", order=order).blocks[0]
    assert " ".join(code[t] for t in _types(block.branch)) == branch
    assert " ".join(code[t] for t in _types(block.post)) == post


def test_zero_initialized_scalars_start_every_block_as_identity():
    for name in ("rezero_resnet20", "skipinit_resnet20", "fixup_resnet20"):
        model = reslab.create_model(name).eval()
        h = model.stem(model.example_input(2))
        with torch.no_grad():
            for block in model.blocks:
                out = block(h)
                assert torch.allclose(out, F.relu(block.shortcut(h))), name
                h = out
    fixup = reslab.create_model("fixup_resnet20")
    assert fixup(fixup.example_input(2)).abs().max() == 0  # Fixup zero-inits the classifier


def test_fixup_scales_the_first_layer_of_each_branch():
    model = reslab.create_model("fixup_resnet56", init="he")
    convs = [m for m in model.blocks[5].branch.modules() if isinstance(m, nn.Conv2d)]
    assert convs[1].weight.abs().sum() == 0
    expected = (2 / convs[0].weight[0].numel()) ** 0.5 * 27**-0.5  # He std times L^(-1/2), L = 27
    assert convs[0].weight.std().item() == pytest.approx(expected, rel=0.1)


def test_drop_path_decays_linearly_and_is_off_at_test_time():
    model = reslab.create_model("resnet110_droppath")
    probs = [m.p for b in model.blocks for m in b.branch.modules() if isinstance(m, DropPath)]
    assert len(probs) == 54 and probs[-1] == pytest.approx(0.5) and probs[0] == pytest.approx(0.5 / 54)
    drop = DropPath(0.5).eval()
    x = torch.randn(8, 3)
    assert torch.equal(drop(x), x)
    drop.train()
    kept = (drop(torch.ones(1000, 1)) != 0).float().mean()
    assert 0.4 < kept < 0.6


def test_looks_linear_crelu_net_is_linear_at_init():
    net = mlp(depth=20, width=32, in_features=5, num_classes=3, activation="crelu", init="looks-linear", bias=False)
    x, y = torch.randn(4, 5), torch.randn(4, 5)
    with torch.no_grad():
        assert torch.allclose(net(x + y), net(x) + net(y), atol=1e-4)
        assert torch.allclose(net(-2 * x), -2 * net(x), atol=1e-4)


def test_initialization_schemes_set_the_weight_scale():
    for scheme, std in [("small", 0.01), ("unit", 1.0), ("he", (2 / 256) ** 0.5), ("glorot", (2 / 512) ** 0.5)]:
        net = mlp(depth=4, width=256, in_features=256, init=scheme)
        w = net.blocks[1].branch[0].weight
        assert w.std().item() == pytest.approx(std, rel=0.05), scheme
    with pytest.raises(reslab.ConfigError):
        mlp(init="magic")


def test_transformer_variants():
    x = torch.randint(16, (2, 16))
    pre, post = reslab.create_model("transformer_preln"), reslab.create_model("transformer_postln")
    assert len(pre.blocks) == 12 and isinstance(pre.blocks[0].branch[0], nn.LayerNorm)
    assert isinstance(post.blocks[0].post, nn.LayerNorm)
    assert reslab.create_model("transformer_noresidual").blocks[0].shortcut is None
    rezero = reslab.create_model("transformer_rezero").eval()
    with torch.no_grad():
        h = rezero.stem(x)
        assert torch.equal(rezero.forward_blocks(h), h)  # alpha = 0: every block is the identity


def test_recurrent_nets_expose_every_state():
    for name in ("rnn_tanh", "gru", "lstm"):
        net = reslab.create_model(name)
        x = net.example_input(3)
        states = net.states(x)
        assert len(states) == x.shape[1]
        assert torch.allclose(net(x), net.head(net.hidden(states[-1])))


def test_custom_block_net_from_parts():
    """A user's own net from parts follows the protocol with no subclassing."""
    blocks = [Block(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Identity()) for _ in range(3)]
    net = BlockNet(nn.Linear(2, 4), blocks, nn.Linear(4, 1), arch={}, input_shape=(2,))
    x = net.example_input(5)
    assert net(x).shape == (5, 1)
    with block_modes(net.blocks, "skip-only"):
        assert torch.allclose(net(x), net.head(net.stem(x)))
