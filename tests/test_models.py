"""Registry-driven checks: every registered model builds, runs, learns and serializes."""

import io
import pickle

import pytest
import torch
from torch import nn

import reslab
from reslab.models import BlockNet, count_parameters, follows_block_protocol

ALL = reslab.list_models()
BIG = {"resnet1202", "plain1202", "preact1001"}
# The gradient of a 1202-layer plain BN net explodes past float32's range (about 1e80 at
# the first layer, measured in float64): the pathology the studies measure, not a bug.
EXPLODES_IN_FLOAT32 = {"plain1202"}


def _output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out.float()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in ALL])
def test_forward_finite_and_every_parameter_gets_a_gradient(name):
    model = reslab.create_model(name)
    x = model.example_input(4)
    out = _output(model, x)
    assert out.shape[0] == 4
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    if name not in EXPLODES_IN_FLOAT32:
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", [n for n in ALL if n not in BIG])
def test_pickle_and_state_dict_round_trip(name):
    model = reslab.create_model(name).eval()
    x = model.example_input(3)
    with torch.no_grad():
        expected = model(x)
        clone = pickle.loads(pickle.dumps(model))
        assert torch.equal(clone(x), expected)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        fresh = reslab.create_model(name).eval()
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        assert torch.equal(fresh(x), expected)


# He2015 Table 6 / He2016 Table 3, at CIFAR shape with 10 classes. ResNet-20 and -56 are
# held to the exact counts of the canonical public reproduction.
EXACT = {"resnet20": 269_722, "resnet56": 853_018}
PAPER_MILLIONS = {
    "resnet20": 0.27,
    "resnet32": 0.46,
    "resnet44": 0.66,
    "resnet56": 0.85,
    "resnet110": 1.7,
    "resnet1202": 19.4,
}


@pytest.mark.parametrize("name,count", EXACT.items())
def test_exact_parameter_counts(name, count):
    assert count_parameters(reslab.create_model(name)) == count


@pytest.mark.parametrize("name,millions", PAPER_MILLIONS.items())
def test_parameter_counts_match_he2015(name, millions):
    params = count_parameters(reslab.create_model(name))
    digits = 2 if millions < 1 else 1
    assert round(params / 1e6, digits) == millions
    # option-A shortcuts carry no parameters, so the plain twin has exactly as many
    assert count_parameters(reslab.create_model(name.replace("resnet", "plain"))) == params


@pytest.mark.parametrize("name,millions", [("preact164", 1.7), ("preact1001", 10.2)])
def test_preact_parameter_counts_match_he2016(name, millions):
    """He2016 counts the weights of conv and fc layers; BN's scale/shift add ~1%."""
    model = reslab.create_model(name)
    weights = sum(
        p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters(recurse=False)
    )
    assert round(weights / 1e6, 1) == millions
    assert abs(count_parameters(model) / 1e6 - millions) / millions < 0.02


def test_depths_follow_the_papers():
    """A net named resnetD has D weight layers (stem + branches + classifier); shortcut
    projections are not counted, as in the papers."""
    for name, depth in [("resnet20", 20), ("resnet110", 110), ("preact164", 164), ("plain56", 56)]:
        model = reslab.create_model(name)
        parts = [model.stem, model.head, *(b.branch for b in model.blocks)]
        layers = [m for part in parts for m in part.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert len(layers) == depth, name


def test_impossible_depth_says_which_depths_are_valid():
    with pytest.raises(reslab.ConfigError, match=r"6n\+2.*20"):
        reslab.create_model("resnet20", depth=21)
    with pytest.raises(reslab.ConfigError, match=r"9n\+2"):
        reslab.create_model("preact164", depth=165)


def test_unknown_model_and_option_are_clear_errors():
    with pytest.raises(reslab.UnknownModelError, match="resnet20"):
        reslab.create_model("resnet2O")
    with pytest.raises(reslab.ConfigError, match="does not take"):
        reslab.create_model("resnet20", colour="blue")


def test_fashion_mnist_shape_and_overrides():
    model = reslab.create_model("resnet20", in_channels=1, image_size=28)
    x = model.example_input(2)
    assert x.shape == (2, 1, 28, 28)
    assert model(x).shape == (2, 10)
    wide = reslab.create_model("resnet20", widths=(8, 16, 32), num_classes=100)
    assert wide(wide.example_input(2)).shape == (2, 100)


def test_list_models_pattern():
    assert reslab.list_models("plain*")[0] == "plain20"
    assert set(reslab.list_models("resnet*")) >= {"resnet20", "resnet1202"}
    assert reslab.list_models("nothing*") == []


def test_every_block_net_follows_the_protocol_and_rnns_do_not_claim_to():
    for name in ALL:
        model = reslab.create_model(name) if name not in BIG else None
        if model is None:
            continue
        assert follows_block_protocol(model) == isinstance(model, BlockNet), name


def test_mlp_linear_head_reads_the_last_block_output_directly():
    from reslab.models import mlp

    default = mlp(3, 8, in_features=1, num_classes=1, shortcut="identity", order="preact", norm="bn")
    linear = mlp(3, 8, in_features=1, num_classes=1, shortcut="identity", order="preact", norm="bn", linear_head=True)
    assert [type(m) for m in default.head] == [nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert [type(m) for m in linear.head] == [nn.Linear]
    x = torch.randn(5, 1)
    z = linear.forward_blocks(linear.stem(x), 0, 3)
    assert torch.equal(linear(x), linear.head[0](z))


@pytest.mark.parametrize("name", ["rnn_tanh", "gru", "lstm"])
def test_a_recurrent_nets_one_call_forward_is_its_cell_stepped_through_time(name):
    """Training runs the whole sequence in one ATen call; the probes step through the cell: the same net."""
    torch.manual_seed(0)
    net = reslab.create_model(name, hidden_size=16, seq_len=20)
    x = torch.randn(4, 20, 2)
    stepped = net.head(net.hidden(net.states(x)[-1]))
    torch.testing.assert_close(net(x), stepped, rtol=1e-5, atol=1e-6)
    net(x).sum().backward()  # and it trains: every weight of the cell gets a gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.cell.parameters())
