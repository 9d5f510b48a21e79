"""Fully connected nets as stacks of Blocks: plain, residual, highway, looks-linear.

``depth`` counts blocks (hidden layers for one-layer units); the input layer (stem) and
the classifier (head) come on top. A plain MLP of depth 50 therefore has 50 hidden
weight layers, the setting of the vanishing-gradient study; Srivastava2015's highway nets
count layers the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from .block import Block
from .init import init_weights
from .merges import Gate
from .net import BlockNet
from .parts import DropPath, DroppedOut, Multiply, Projection, Scale, Scaled
from .units import UnitParts

MLP_SHORTCUTS = ("none", "identity", "scale", "linear", "dropout", "highway", "shortcut-gate")


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
    drop_path: float = 0.0,
    linear_head: bool = False,
) -> BlockNet:
    """An MLP of ``depth`` blocks of ``layers_per_block`` linear layers each.

    Args:
        input_shape: shape of one sample; it is flattened (``in_features`` overrides its
            size, e.g. 1 for the 1-D inputs of the shattered-gradient study).
        shortcut: "none" (plain), "identity", "scale" (x ``shortcut_scale``), "linear" (a
            learned linear map, He2016's 1x1-conv shortcut for an MLP), "dropout" (dropout
            ``shortcut_dropout`` on the shortcut), "highway" (Srivastava2015 and He2016's
            exclusive gate: H(x)·T(x) + x·(1 − T(x)), gate bias ``gate_bias``) or
            "shortcut-gate" (He2016: F + (1 − g)·x).
        order: where norm and activation sit (``units.ORDERS``).
        norm: "bn" (BatchNorm1d) or "none".
        activation: "relu", "tanh" or "crelu" (CReLU doubles the width; plain nets only,
            for Balduzzi2017's looks-linear init ``init="looks-linear"``).
        branch_scale: fixed multiplier on every branch (Balduzzi2017's beta).
        scalar: "rezero" puts a learnable scalar (init 0) at the end of every branch.
        linear_head: read the output linearly from the last block's output, without the
            final norm/activation a pre-activation order otherwise puts in the head (the
            shattered-gradient probe compares families that all end in a linear readout).
    """
    if depth < 1 or width < 1 or layers_per_block < 1:
        raise ConfigError(
            f"mlp needs depth, width and layers_per_block >= 1 (got {depth}, {width}, {layers_per_block})"
        )
    if shortcut not in MLP_SHORTCUTS:
        raise ConfigError(f"unknown mlp shortcut {shortcut!r}; choose one of {', '.join(MLP_SHORTCUTS)}")
    if norm not in ("bn", "none"):
        raise ConfigError(f"norm must be 'bn' or 'none', got {norm!r}")
    if scalar not in (None, "rezero"):
        raise ConfigError(f"mlp scalar must be None or 'rezero', got {scalar!r}")
    parts = UnitParts(order, nn.BatchNorm1d if norm == "bn" else None, activation)
    if parts.expansion != 1 and (shortcut != "none" or order != "post"):
        raise ConfigError("CReLU widens its input, so it is supported in plain nets with order 'post' only")
    arch = dict(locals())
    arch.pop("parts")
    n_in = in_features if in_features is not None else _prod(input_shape)
    feat = width * parts.expansion if not parts.preactivated else width

    stem = nn.Sequential(nn.Flatten(), nn.Linear(n_in, width, bias=bias), *parts.stem_tail(width))
    blocks = []
    for i in range(depth):
        layers = [
            nn.Linear(feat if j == 0 else width * parts.expansion, width, bias=bias) for j in range(layers_per_block)
        ]
        branch = parts.branch(layers, [width] * (layers_per_block + 1))
        if scalar == "rezero":
            branch.append(Scale(0.0))
        if branch_scale != 1.0:
            branch.append(Multiply(branch_scale))
        if drop_path and shortcut != "none":
            branch.append(DropPath(drop_path * (i + 1) / depth))
        skip = _shortcut(shortcut, width, bias, shortcut_scale, shortcut_dropout)
        merge = None
        if shortcut in ("highway", "shortcut-gate"):
            kind = "exclusive" if shortcut == "highway" else "shortcut-only"
            merge = Gate(nn.Linear(width, width), gate_bias, kind)
        blocks.append(Block(nn.Sequential(*branch), skip, merge, parts.post(width)))
    head_start = [] if linear_head else parts.head_start(width)
    head = nn.Sequential(*head_start, nn.Linear(feat, num_classes, bias=bias))
    net = BlockNet(stem, blocks, head, arch, input_shape=(n_in,) if in_features is not None else tuple(input_shape))
    return init_weights(net, init)


def _shortcut(kind: str, width: int, bias: bool, scale: float, dropout: float) -> nn.Module | None:
    if kind == "none":
        return None
    if kind == "scale":
        return Scaled(nn.Identity(), scale)
    if kind == "linear":
        return Projection(nn.Linear(width, width, bias=bias))
    if kind == "dropout":
        return DroppedOut(nn.Identity(), dropout)
    return nn.Identity()


def _prod(shape: Sequence[int]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out
