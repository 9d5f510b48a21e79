"""CIFAR-style convolutional nets (He2015 Sec. 4.2; He2016; DenseNet), as stacks of Blocks.

Depth counts weight layers as the papers do: 6n+2 with basic blocks (two 3x3 convs) and
9n+2 with bottleneck blocks (1x1, 3x3, 1x1), n blocks in each of three stages of widths
16/32/64 (bottleneck outputs are 4x wider). Any input channel count and image size work
(global average pooling before the classifier), so 28x28x1 Fashion-MNIST and 32x32x3
CIFAR use the same nets.

The blocks come from the shared ``builder``; this module supplies only what is
convolutional: the branches' convs, the 1x1 conv of projections and gates, BatchNorm2d,
the stages' widths and strides, the stem and the head.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from .block import Block
from .builder import BlockBuilder, BlockConfig, BlockShape, LayerFactory, drop_path_rates, init_net
from .net import BlockNet

BOTTLENECK_EXPANSION = 4


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def conv1x1(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=bias)


def _basic_branch(shape: BlockShape) -> tuple[list[nn.Module], list[int]]:
    cin, cout, stride = shape
    return [conv3x3(cin, cout, stride), conv3x3(cout, cout)], [cin, cout, cout]


def _bottleneck_branch(shape: BlockShape) -> tuple[list[nn.Module], list[int]]:
    cin, cout, stride = shape
    width = cout // BOTTLENECK_EXPANSION
    return [conv1x1(cin, width), conv3x3(width, width, stride), conv1x1(width, cout)], [cin, width, width, cout]


def _dense_branch(shape: BlockShape) -> tuple[list[nn.Module], list[int]]:
    return [conv3x3(shape.cin, shape.cout)], [shape.cin, shape.cout]


def _projection(shape: BlockShape) -> nn.Module:
    return conv1x1(*shape)


def _gate(shape: BlockShape) -> nn.Module:
    return conv1x1(*shape, bias=True)


def _conv_layers(branch) -> LayerFactory:
    return LayerFactory(branch=branch, projection=_projection, gate=_gate, norm=nn.BatchNorm2d)


def blocks_per_stage(depth: int, bottleneck: bool) -> int:
    """n from depth = 6n+2 (basic) or 9n+2 (bottleneck); a clear error otherwise."""
    per_block = 9 if bottleneck else 6
    if depth < per_block + 2 or (depth - 2) % per_block:
        kind = "bottleneck" if bottleneck else "basic"
        valid = ", ".join(str(per_block * n + 2) for n in (1, 2, 3, 4, 5, 6, 7, 9, 18))
        raise ConfigError(
            f"depth {depth} is impossible with {kind} blocks: depth must be {per_block}n+2 for n >= 1 ({valid}, ...)"
        )
    return (depth - 2) // per_block


def _stage_shapes(widths: Sequence[int], n: int, expansion: int) -> list[BlockShape]:
    """n blocks a stage; the first block of every stage but the first halves the resolution."""
    shapes, cin = [], widths[0]
    for stage, width in enumerate(widths):
        for i in range(n):
            shapes.append(BlockShape(cin, width * expansion, 2 if stage > 0 and i == 0 else 1))
            cin = width * expansion
    return shapes


def _head(builder: BlockBuilder, width: int, num_classes: int) -> nn.Sequential:
    pool = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*builder.parts.head_start(width), *pool, *builder.classifier(width, num_classes))


def cifar_resnet(
    depth: int = 20,
    *,
    bottleneck: bool = False,
    shortcut: str = "identity",
    downsample: str = "A",
    order: str = "post",
    widths: Sequence[int] = (16, 32, 64),
    in_channels: int = 3,
    image_size: int = 32,
    num_classes: int = 10,
    norm: str = "bn",
    scalar: str | None = None,
    alpha_init: float = 0.0,
    drop_path: float = 0.0,
    branch_scale: float = 1.0,
    shortcut_scale: float = 0.5,
    shortcut_dropout: float = 0.5,
    gate_bias: float = -6.0,
    init: str = "he",
    zero_init_residual: bool = False,
) -> BlockNet:
    """A CIFAR-style ResNet (or plain net, with ``shortcut="none"``).

    Args:
        depth: weight layers, 6n+2 (basic) or 9n+2 (bottleneck).
        bottleneck: use 1x1-3x3-1x1 bottleneck units with 4x expansion (He2016's 164/1001).
        widths: the stages' widths (a bottleneck stage outputs 4x as many channels).
        init: the init scheme (``init.SCHEMES``).
        The other options configure every block: see ``builder.BlockConfig`` (all its
        shortcuts but "concat", which is ``cifar_densenet``'s).
    """
    cfg = BlockConfig(
        shortcut=shortcut,
        downsample=downsample,
        order=order,
        norm=norm,
        scalar=scalar,
        alpha_init=alpha_init,
        branch_scale=branch_scale,
        drop_path=drop_path,
        gate_bias=gate_bias,
        shortcut_scale=shortcut_scale,
        shortcut_dropout=shortcut_dropout,
        zero_init_residual=zero_init_residual,
    )
    if cfg.shortcut == "concat":
        raise ConfigError("shortcut 'concat' is DenseNet's: use cifar_densenet")
    if len(widths) < 1 or any(w < 1 for w in widths):
        raise ConfigError(f"widths must be positive, got {tuple(widths)}")
    n = blocks_per_stage(depth, bottleneck)
    builder = BlockBuilder(cfg, _conv_layers(_bottleneck_branch if bottleneck else _basic_branch))
    shapes = _stage_shapes(widths, n, BOTTLENECK_EXPANSION if bottleneck else 1)
    stem = nn.Sequential(conv3x3(in_channels, widths[0]), *builder.parts.stem_tail(widths[0]))
    blocks = builder.blocks(shapes)
    head = _head(builder, shapes[-1].cout, num_classes)
    arch = dict(
        builder="cifar_resnet",
        depth=depth,
        bottleneck=bottleneck,
        widths=list(widths),
        in_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
        init=init,
        blocks_per_stage=n,
        **cfg.as_dict(),
    )
    net = BlockNet(stem, blocks, head, arch, input_shape=(in_channels, image_size, image_size))
    return init_net(net, cfg, init)


def _transition(cin: int, cout: int) -> Block:
    """DenseNet's transition between stages (BN-ReLU-conv1x1-avgpool), a plain block."""
    layers = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), conv1x1(cin, cout), nn.AvgPool2d(2))
    return Block(layers, None, changes_shape=True)


def cifar_densenet(
    depth: int = 40,
    *,
    growth: int = 12,
    compression: float = 1.0,
    stages: int = 3,
    stem_width: int | None = None,
    in_channels: int = 3,
    image_size: int = 32,
    num_classes: int = 10,
    drop_path: float = 0.0,
    init: str = "he",
) -> BlockNet:
    """DenseNet for CIFAR (Huang et al. 2017), the concatenation skip as Blocks.

    Each dense layer is a Block with branch BN-ReLU-conv3x3 (to ``growth`` channels),
    identity shortcut and a Concat merge; each transition (BN-ReLU-conv1x1-avgpool) is a
    plain Block. depth = 3 * layers + 4 as in the paper (DenseNet-40: 12 layers a stage).
    ``drop_path`` decays linearly over the dense layers (Huang2016), as in ``BlockConfig``.
    """
    if (depth - 4) % stages or depth <= 4:
        raise ConfigError(f"densenet depth must be {stages}n+4 for n >= 1 (e.g. 13, 22, 40, 100); got {depth}")
    if not 0 < compression <= 1:
        raise ConfigError(f"compression must be in (0, 1], got {compression}")
    per_stage = (depth - 4) // stages
    cfg = BlockConfig(shortcut="concat", order="preact", drop_path=drop_path)
    builder = BlockBuilder(cfg, _conv_layers(_dense_branch))
    rates = iter(drop_path_rates(drop_path, stages * per_stage))
    width = stem_width or 2 * growth
    stem = nn.Sequential(conv3x3(in_channels, width))
    blocks: list[Block] = []
    for stage in range(stages):
        for _ in range(per_stage):
            blocks.append(builder.block(BlockShape(width, growth), next(rates)))
            width += growth
        if stage < stages - 1:
            blocks.append(_transition(width, int(width * compression)))
            width = int(width * compression)
    arch = dict(
        builder="cifar_densenet",
        depth=depth,
        growth=growth,
        compression=compression,
        stages=stages,
        stem_width=stem_width,
        in_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
        init=init,
        **cfg.as_dict(),
    )
    net = BlockNet(stem, blocks, _head(builder, width, num_classes), arch, (in_channels, image_size, image_size))
    return init_net(net, cfg, init)
