"""Fully connected nets as stacks of Blocks: plain, residual, highway, dense, looks-linear.

``depth`` counts blocks (hidden layers for one-layer units); the input layer (stem) and
the classifier (head) come on top. A plain MLP of depth 50 therefore has 50 hidden
weight layers, the setting of the vanishing-gradient study; Srivastava2015's highway nets
count layers the same way.

The blocks come from the shared ``builder``, like the CNNs'; this module supplies only
what is fully connected: Linear layers, BatchNorm1d, the widths, the stem and the head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from .builder import BlockBuilder, BlockConfig, BlockShape, LayerFactory, init_net
from .net import BlockNet
from .units import UnitParts


def _linear_layers(layers_per_block: int, parts: UnitParts, bias: bool) -> LayerFactory:
    """Branches of ``layers_per_block`` Linear layers. An activation that widens (CReLU)
    widens every layer's input, the first one's only where the block input is activated."""

    def branch(shape: BlockShape) -> tuple[list[nn.Module], list[int]]:
        inputs = [shape.cin if parts.preactivated else shape.cin * parts.expansion]
        inputs += [shape.cout * parts.expansion] * (layers_per_block - 1)
        layers = [nn.Linear(n, shape.cout, bias=bias) for n in inputs]
        return layers, [shape.cin] + [shape.cout] * layers_per_block

    return LayerFactory(
        branch=branch,
        projection=lambda shape: nn.Linear(shape.cin, shape.cout, bias=bias),
        gate=lambda shape: nn.Linear(shape.cin, shape.cout),
        norm=nn.BatchNorm1d,
    )


def _block_shapes(cfg: BlockConfig, depth: int, width: int, growth: int) -> list[BlockShape]:
    """``depth`` blocks of ``width``; with ``concat`` block i adds ``growth`` features to its input."""
    if cfg.shortcut != "concat":
        return [BlockShape(width, width)] * depth
    if growth < 1:
        raise ConfigError(f"shortcut 'concat' needs growth >= 1, got {growth}")
    return [BlockShape(width + i * growth, growth) for i in range(depth)]


def _head(builder: BlockBuilder, last: BlockShape, num_classes: int, bias: bool, linear_head: bool) -> nn.Sequential:
    parts, out = builder.parts, builder.out_width(last)
    features = out if parts.preactivated else out * parts.expansion
    head_start = [] if linear_head else parts.head_start(out)
    return nn.Sequential(*head_start, *builder.classifier(features, num_classes, bias=bias))


def mlp(
    depth: int = 10,
    width: int = 256,
    *,
    in_features: int | None = None,
    input_shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    layers_per_block: int = 1,
    shortcut: str = "none",
    order: str = "post",
    norm: str = "none",
    activation: str = "relu",
    bias: bool = True,
    init: str = "he",
    gate_bias: float = -2.0,
    shortcut_scale: float = 0.5,
    shortcut_dropout: float = 0.5,
    branch_scale: float = 1.0,
    scalar: str | None = None,
    alpha_init: float = 0.0,
    drop_path: float = 0.0,
    growth: int = 16,
    zero_init_residual: bool = False,
    linear_head: bool = False,
) -> BlockNet:
    """An MLP of ``depth`` blocks of ``layers_per_block`` linear layers each.

    Args:
        input_shape: shape of one sample; it is flattened (``in_features`` overrides its
            size, e.g. 1 for the 1-D inputs of the shattered-gradient study).
        bias: whether the linear layers have biases.
        growth: with ``shortcut="concat"`` (a dense MLP), the features each block adds.
        linear_head: read the output linearly from the last block's output, without the
            final norm/activation a pre-activation order otherwise puts in the head (the
            shattered-gradient probe compares families that all end in a linear readout).
        The other options configure every block: see ``builder.BlockConfig`` (an MLP
        never changes shape inside, so ``downsample`` does not apply).
    """
    if depth < 1 or width < 1 or layers_per_block < 1:
        raise ConfigError(
            f"mlp needs depth, width and layers_per_block >= 1 (got {depth}, {width}, {layers_per_block})"
        )
    cfg = BlockConfig(
        shortcut=shortcut,
        order=order,
        norm=norm,
        activation=activation,
        scalar=scalar,
        alpha_init=alpha_init,
        branch_scale=branch_scale,
        drop_path=drop_path,
        gate_bias=gate_bias,
        shortcut_scale=shortcut_scale,
        shortcut_dropout=shortcut_dropout,
        zero_init_residual=zero_init_residual,
    )
    shapes = _block_shapes(cfg, depth, width, growth)
    n_in = in_features if in_features is not None else math.prod(int(s) for s in input_shape)
    builder = BlockBuilder(cfg, _linear_layers(layers_per_block, cfg.unit_parts(nn.BatchNorm1d), bias))
    stem = nn.Sequential(nn.Flatten(), nn.Linear(n_in, width, bias=bias), *builder.parts.stem_tail(width))
    blocks = builder.blocks(shapes)
    head = _head(builder, shapes[-1], num_classes, bias, linear_head)
    arch = dict(
        builder="mlp",
        depth=depth,
        width=width,
        input_shape=[n_in] if in_features is not None else list(input_shape),
        num_classes=num_classes,
        layers_per_block=layers_per_block,
        bias=bias,
        init=init,
        growth=growth,
        linear_head=linear_head,
        **cfg.as_dict(),
    )
    net = BlockNet(stem, blocks, head, arch, input_shape=(n_in,) if in_features is not None else tuple(input_shape))
    return init_net(net, cfg, init)
