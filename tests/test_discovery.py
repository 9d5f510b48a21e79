"""Block discovery: every model style of ``model_styles`` becomes a BlockNet over its own modules."""

import pytest
import torch
import torch.nn.functional as F
from model_styles import (
    EXPECTED_BLOCKS,
    STYLES,
    CifarResNet,
    PlainCNN,
    PreActResNet,
    ShapeCheckedNet,
    TimmBasicBlock,
    TimmResNet,
    TokenTransformer,
    TvBasicBlock,
    TvResNet,
    randomize_norms,
)
from torch import nn

import reslab
from reslab.models import MODES, block_modes, follows_block_protocol
from reslab.probes import DiscoveryError, as_block_net
from reslab.probes.lesion import lesion_predictions, lesion_study
from reslab.probes.paths import PathSampler, path_gradients, summed_cross_entropy


def _build(name):
    builder, example = STYLES[name]
    torch.manual_seed(0)
    model = randomize_norms(builder()).eval()
    x = example()
    return model, x, as_block_net(model, x)


@pytest.fixture(params=sorted(STYLES), scope="module")
def style(request):
    return (request.param, *_build(request.param))


def _targets(model, x):
    with torch.no_grad():
        out = model(x)
    return torch.randint(out.shape[-1], out.shape[:-1])


def test_discovered_net_equals_the_original(style):
    name, model, x, net = style
    assert follows_block_protocol(net) and len(net.blocks) == EXPECTED_BLOCKS[name]
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(net(x), expected)
        k = len(net.blocks) // 2
        h = net.forward_blocks(net.stem(x), 0, k)
        assert torch.equal(net.head(net.forward_blocks(h, k)), expected)


def test_discovered_net_shares_parameters_and_buffers(style):
    _, model, x, net = style
    assert {p.data_ptr() for p in net.parameters()} == {p.data_ptr() for p in model.parameters()}
    assert {b.data_ptr() for b in net.buffers()} == {b.data_ptr() for b in model.buffers()}
    last = [p for p in model.parameters() if p.dim() == 2][-1]
    with torch.no_grad():
        before = last.clone()
        last.mul_(2.0)  # a change to the original is a change to the discovered net
        assert torch.equal(net(x), model(x))
        last.copy_(before)


def test_train_mode_matches_with_the_same_random_draws(style):
    """Dropout, drop-path and batch statistics behave as in the original (the live training flag)."""
    _, model, x, net = style
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        net.train()
        assert all(m.training for m in net.modules())  # the shared leaves and the net's own parts
        model.train()
        torch.manual_seed(3)
        got = net(x)
        torch.manual_seed(3)
        assert torch.equal(got, model(x))
    finally:
        net.eval(), model.eval()
        model.load_state_dict(state)  # BN running statistics moved twice


def test_every_mode_runs(style):
    _, model, x, net = style
    full = net(x).detach()  # with autograd on, as below (attention has a separate inference path)
    for mode in MODES:
        with block_modes(net.blocks, mode):
            h = net.stem(x).detach().requires_grad_()
            out = net.head(net.forward_blocks(h))
            assert out.shape == full.shape and torch.isfinite(out).all()
            if mode.startswith("grad-"):
                assert torch.equal(out, full)  # only the backward signal is routed
                out.square().sum().backward()
                assert h.grad is not None and torch.isfinite(h.grad).all()


def test_lesion_and_path_probes_run(style):
    _, model, x, net = style
    y = _targets(model, x)
    cached, naive = lesion_predictions(net, x, cached=True), lesion_predictions(net, x, cached=False)
    assert torch.equal(cached[0], naive[0]) and torch.equal(cached[1], naive[1])
    result = lesion_study(net, x, y, draws=1, batch_size=2)
    assert result.num_blocks == len(net.blocks)
    paths = path_gradients(net, x, y, samples_per_length=1, batch_size=2)
    assert sum(paths.counts) == 2 ** len(net.blocks) and (paths.magnitude > 0).all()
    sampler = PathSampler(net, x[:2], y[:2])
    chosen = {0, len(net.blocks) - 1}
    modes = ["grad-branch-only" if i in chosen else "grad-skip-only" for i in range(len(net.blocks))]
    h = net.stem(x[:2]).detach().requires_grad_()
    with block_modes(net.blocks, modes):
        summed_cross_entropy(net.head(net.forward_blocks(h)), y[:2]).backward()
    assert torch.allclose(sampler.input_gradient(chosen), h.grad, rtol=1e-4, atol=1e-7)


def _units(model):
    return [u for name, u in model.named_modules() if isinstance(u, nn.Module) and hasattr(u, "conv2")]


@pytest.mark.parametrize("name", ["cifar-option-a", "cifar-option-b", "torchvision-basic"])
def test_skip_only_outputs_the_shortcut_module(name):
    model, x, net = _build(name)
    units = _units(model)
    j = next(i for i, b in enumerate(net.blocks) if b.changes_shape and i > 0)
    skip = getattr(units[j], "shortcut", None) or units[j].downsample
    with torch.no_grad():
        h = net.forward_blocks(net.stem(x), 0, j)
        with block_modes(net.blocks[j : j + 1], "skip-only"):
            assert torch.equal(net.blocks[j](h), skip(h))


def test_preactivation_projection_reads_the_preactivated_input():
    model, x, net = _build("preact")
    j = next(i for i, b in enumerate(net.blocks) if b.changes_shape)
    unit = model.layers[j]
    with torch.no_grad():
        h = net.forward_blocks(net.stem(x), 0, j)
        with block_modes(net.blocks[j : j + 1], "skip-only"):
            assert torch.equal(net.blocks[j](h), unit.shortcut(F.relu(unit.bn1(h))))
    assert all(isinstance(b.post, nn.Identity) for b in net.blocks)  # nothing after the addition


def _modules_of(part):
    return {id(m) for m in part.modules()}


def test_post_ln_layernorm_is_the_post_and_pre_ln_final_norm_is_the_head():
    model, _, net = _build("transformer-post-ln")
    norms = [n for layer in model.layers for n in (layer.ln1, layer.ln2)]
    assert all(id(norm) in _modules_of(b.post) for norm, b in zip(norms, net.blocks))
    model, _, net = _build("transformer-pre-ln")
    assert all(isinstance(b.post, nn.Identity) for b in net.blocks)
    assert id(model.norm) in _modules_of(net.head) and id(model.layers[0].ln1) in _modules_of(net.blocks[0].branch)
    assert net.vocab_size == 11 and net.input_shape == (8,)


def test_training_the_discovered_net_trains_the_original():
    torch.manual_seed(0)
    model = TvResNet(TvBasicBlock, [1, 1, 1, 1])
    net = as_block_net(model, input_shape=(3, 32, 32))
    before = model.layer2[0].conv1.weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    F.cross_entropy(net(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert not torch.equal(model.layer2[0].conv1.weight, before)


def test_drop_path_modules_stay_whole():
    model = TimmResNet(TimmBasicBlock, [2, 1, 1, 1], drop_path_rate=0.5)
    net = as_block_net(model, input_shape=(3, 32, 32))
    assert any(name.endswith("drop_path") for name in net.arch["opaque_modules"])


def test_reslab_nets_are_returned_as_they_are():
    zoo = reslab.create_model("resnet20")
    assert as_block_net(zoo) is zoo


def test_named_blocks_leave_other_merges_to_stem():
    """A residual unit in the stem is found automatically; naming the blocks makes it part of the stem."""

    class StemSkip(CifarResNet):
        def __init__(self):
            super().__init__(1, "B")
            self.extra = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = out + self.extra(out)
            out = self.layer3(self.layer2(self.layer1(out)))
            return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))

    model = randomize_norms(StemSkip()).eval()
    x = torch.randn(2, 3, 16, 16)
    assert len(as_block_net(model, x).blocks) == 4
    named = as_block_net(model, x, blocks=["layer1.0", model.layer2[0], "layer3.0"])
    assert len(named.blocks) == 3 and id(model.extra) in _modules_of(named.stem)
    with torch.no_grad():
        assert torch.equal(named(x), model(x))
    with pytest.raises(DiscoveryError, match="no module named"):
        as_block_net(model, x, blocks=["layer9"])
    with pytest.raises(DiscoveryError, match="in order"):
        as_block_net(model, x, blocks=["layer2.0", "layer1.0"])


def test_a_named_block_needs_exactly_one_addition():
    model = TokenTransformer("pre").eval()
    x = torch.randint(11, (2, 8))
    with pytest.raises(DiscoveryError, match="2 residual additions"):
        as_block_net(model, x, blocks=["layers.0", "layers.1"])


@pytest.mark.parametrize(
    "model, pattern",
    [
        (PlainCNN(), r"found no addition whose two inputs share a main-stream value .*blocks=\[\.\.\."),
        (ShapeCheckedNet(1), r"cannot trace ShapeCheckedNet with torch.fx"),
        (PreActResNet(1), r"pass an example input"),
    ],
)
def test_errors_say_what_was_found_and_what_to_do(model, pattern):
    x = None if isinstance(model, PreActResNet) else torch.randn(2, 3, 16, 16)
    with pytest.raises(DiscoveryError, match=pattern) as info:
        as_block_net(model, x)
    assert "\n" not in str(info.value) and isinstance(info.value, reslab.ReslabError)


def test_a_block_that_cannot_be_traced_is_named_in_the_error():
    class Checked(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            if x.sum() > 1e9:  # control flow on a tensor's value
                return x
            return x + self.conv(x)

    model = nn.Sequential(Checked(), Checked())
    with pytest.raises(DiscoveryError, match=r"kept whole because they cannot be traced: 0, 1"):
        as_block_net(model, torch.randn(2, 3, 8, 8))
