"""The shared block builder: every block option works in the CNN and the MLP family alike."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reslab
from reslab.models import BlockConfig, block_modes, cifar_densenet, cifar_resnet, mlp
from reslab.models.merges import Concat, Gate
from reslab.models.parts import DropPath, LearnedScalar


def _blocks_start_as_relu_of_shortcut(net) -> bool:
    h = net.stem(net.example_input(3))
    with torch.no_grad():
        for block in net.blocks:
            out = block(h)
            if not torch.allclose(out, F.relu(block.shortcut(h))):
                return False
            h = out
    return True


@pytest.mark.parametrize("scalar", ["rezero", "skipinit", "fixup"])
def test_normalization_free_scalars_start_every_mlp_block_as_identity(scalar):
    net = mlp(depth=6, width=16, in_features=5, layers_per_block=2, shortcut="identity", scalar=scalar).eval()
    assert _blocks_start_as_relu_of_shortcut(net)
    if scalar == "fixup":
        assert net(net.example_input(2)).abs().max() == 0  # Fixup zero-inits the classifier


def test_fixup_mlp_scales_all_but_the_last_layer_of_each_branch():
    depth, width = 9, 128
    net = mlp(depth=depth, width=width, in_features=5, layers_per_block=3, shortcut="identity", scalar="fixup")
    first, second, last = net.blocks[4].branch.weight_layers()
    assert last.weight.abs().sum() == 0
    expected = (2 / width) ** 0.5 * depth ** (-1 / 4)  # He std times L^(-1/(2m-2)), m = 3
    assert first.weight.std().item() == pytest.approx(expected, rel=0.05)
    assert second.weight.std().item() == pytest.approx(expected, rel=0.05)
    one_layer = mlp(depth=3, width=8, shortcut="identity", scalar="fixup")  # m = 1: only the zero last layer
    assert all(b.branch.weight_layers()[0].weight.abs().sum() == 0 for b in one_layer.blocks)


def test_learned_scalar_starts_at_alpha_init_in_both_families():
    for net in (
        mlp(depth=2, width=8, shortcut="identity", scalar="skipinit", alpha_init=0.25),
        cifar_resnet(8, norm="none", scalar="skipinit", alpha_init=0.25),
    ):
        alphas = [m.weight.item() for m in net.modules() if isinstance(m, LearnedScalar)]
        assert alphas == [0.25] * len(net.blocks)


def test_drop_path_decays_linearly_in_every_family():
    nets = [
        mlp(depth=4, width=8, shortcut="identity", drop_path=0.4),
        cifar_resnet(14, drop_path=0.4),
        cifar_densenet(10, stages=2, drop_path=0.4),  # 3 dense layers a stage, transitions have none
    ]
    for net in nets:
        probs = [m.p for m in net.modules() if isinstance(m, DropPath)]
        assert probs == pytest.approx([0.4 * (i + 1) / len(probs) for i in range(len(probs))])
        assert len(probs) == (6 if net is nets[2] else len(net.blocks))


def test_dense_mlp_concatenates_growth_features_a_block():
    net = mlp(depth=3, width=8, growth=4, shortcut="concat", in_features=5, order="preact", norm="bn")
    assert all(isinstance(b.merge, Concat) and b.changes_shape for b in net.blocks)
    h = net.stem(net.example_input(6))
    assert net.forward_blocks(h).shape == (6, 8 + 3 * 4)
    with block_modes(net.blocks, "skip-only"):
        assert net(net.example_input(6)).shape == (6, 10)  # a deleted block contributes zero features
    net(net.example_input(6)).square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_zero_init_residual_zeroes_the_norm_that_ends_a_branch_in_both_families():
    net = mlp(depth=3, width=8, in_features=5, shortcut="identity", norm="bn", zero_init_residual=True).eval()
    assert _blocks_start_as_relu_of_shortcut(net)
    cnn = cifar_resnet(8, order="relu-preact", zero_init_residual=True)
    assert all(b.branch[b.branch.closing_norm].weight.abs().sum() == 0 for b in cnn.blocks)
    preact = mlp(depth=3, width=8, shortcut="identity", norm="bn", order="preact", zero_init_residual=True)
    norms = [m for b in preact.blocks for m in b.branch.modules() if isinstance(m, nn.BatchNorm1d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)  # no norm ends a preact branch


def test_both_families_share_the_gate_and_shortcut_vocabulary():
    gated = [
        mlp(depth=2, width=8, shortcut="exclusive-gate"),
        cifar_resnet(8, shortcut="exclusive-gate", downsample="B"),
    ]
    assert all(isinstance(b.merge, Gate) and b.merge.kind == "exclusive" for net in gated for b in net.blocks)
    for net in (mlp(depth=2, width=8, shortcut="projection"), cifar_resnet(8, shortcut="projection")):
        assert all(len(list(b.shortcut.parameters())) for b in net.blocks)


@pytest.mark.parametrize(
    "build",
    [
        lambda: mlp(shortcut="highway"),  # old names are gone: exclusive-gate
        lambda: mlp(shortcut="linear"),  # projection
        lambda: cifar_resnet(shortcut="conv1x1"),  # projection
        lambda: cifar_resnet(shortcut="B"),  # identity with downsample="B"
        lambda: cifar_resnet(shortcut="concat"),  # cifar_densenet
        lambda: mlp(shortcut="concat", growth=0),
        lambda: mlp(shortcut="identity", scalar="rezero", norm="bn"),
        lambda: mlp(shortcut="identity", scalar="fixup", order="preact"),
        lambda: mlp(shortcut="identity", activation="crelu"),
    ],
)
def test_impossible_block_options_are_clear_errors(build):
    with pytest.raises(reslab.ConfigError):
        build()


def test_arch_records_the_block_config_as_plain_data():
    for name in ("resnet20", "preact164", "highway_mlp", "densenet40", "transformer_preln"):
        arch = reslab.create_model(name).arch
        assert json.loads(json.dumps(arch)) == arch, name
    arch = reslab.create_model("preact164").arch
    config = BlockConfig(**{k: arch[k] for k in BlockConfig.__dataclass_fields__})
    assert (config.shortcut, config.downsample, config.order) == ("identity", "B", "preact")
