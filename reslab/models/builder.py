"""The one builder of blocks that the CNN and MLP families share (timm-style).

A family builder says what its blocks are made of (a ``LayerFactory``: the weight layers of a
branch, the layer of a learned shortcut or gate, the norm) and what shapes they have (a
``BlockShape`` per block); everything else (the branch's norms and activations in the
chosen order, its tail, the shortcut and the merge) is built here, from one ``BlockConfig``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from torch import nn

from ..errors import ConfigError
from .block import Block
from .init import fixup_init, init_weights
from .merges import Concat, Gate
from .net import BlockNet
from .parts import Bias, Branch, DropPath, FixedScale, LearnedScalar, OptionA, Projection, activation
from .units import UnitParts, check_order

SHORTCUTS = (
    "none",  # plain: no skip connection
    "identity",  # identity; where the shape changes, ``downsample`` says how
    "projection",  # He2016: a learned projection (1x1 conv / linear map) on every shortcut
    "scale",  # He2016: shortcut multiplied by shortcut_scale
    "dropout",  # He2016: dropout on the shortcut
    "exclusive-gate",  # He2016 / Srivastava2015's highway: g*F + (1-g)*x
    "shortcut-gate",  # He2016: F + (1-g)*x
    "concat",  # DenseNet: the branch's features appended to the input's
)
DOWNSAMPLES = (
    "A",  # He2015 option A: subsample + zero-padded channels, no parameters
    "B",  # He2015 option B: 1x1 projection (+ BN, except before pre-activation units)
)
SCALARS = (None, "rezero", "skipinit", "fixup")
NORMS = ("bn", "none")
GATES = {"exclusive-gate": "exclusive", "shortcut-gate": "shortcut-only"}


@dataclass(frozen=True)
class BlockConfig:
    """How every block of a net is built.

    Attributes:
        shortcut: one of ``SHORTCUTS``.
        downsample: "A" or "B" (``DOWNSAMPLES``): how an identity, scale, dropout or gate
            shortcut changes shape where its block does.
        order: where norm and activation sit in a unit (``units.ORDERS``; He2016 Table 2).
        norm: "bn" or "none".
        activation: "relu", "tanh" or "crelu" (CReLU doubles the width: plain, post-order
            nets only).
        scalar: "rezero"/"skipinit" (a learned scalar, init ``alpha_init``, at the end of
            every branch) or "fixup" (Fixup's scalar biases before every layer and
            activation, a multiplier at the branch end, and its init); all need
            ``norm="none"`` and an additive or gated shortcut.
        branch_scale: a fixed multiplier on every branch (He2016's "0.5 both" with
            shortcut "scale", Balduzzi2017's beta).
        drop_path: drop-path probability of the last block; block l of L gets
            drop_path * l / L (Huang2016's linear decay).
        gate_bias: initial bias of the gates (He2016 use 0 and -6, Srivastava2015 -1 to -3).
        shortcut_scale, shortcut_dropout: the "scale" and "dropout" shortcuts' constants.
        zero_init_residual: start the norm that ends every branch at zero (Goyal et al.),
            so each block starts as its shortcut (orders whose branch ends with a norm).
    """

    shortcut: str = "identity"
    downsample: str = "A"
    order: str = "post"
    norm: str = "bn"
    activation: str = "relu"
    scalar: str | None = None
    alpha_init: float = 0.0
    branch_scale: float = 1.0
    drop_path: float = 0.0
    gate_bias: float = -6.0
    shortcut_scale: float = 0.5
    shortcut_dropout: float = 0.5
    zero_init_residual: bool = False

    def __post_init__(self) -> None:
        _check_choice("shortcut", self.shortcut, SHORTCUTS)
        _check_choice("downsample", self.downsample, DOWNSAMPLES)
        check_order(self.order)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("scalar", self.scalar, SCALARS)
        if self.scalar is not None and (self.norm != "none" or self.shortcut in ("none", "concat")):
            raise ConfigError(f"scalar={self.scalar!r} needs norm='none' and an additive or gated shortcut")
        if self.scalar == "fixup" and self.order != "post":
            raise ConfigError("Fixup is defined for the original (post-activation) unit order")
        if activation(self.activation)[1] != 1 and (self.shortcut != "none" or self.order != "post"):
            raise ConfigError("CReLU widens its input, so it is supported in plain nets with order 'post' only")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def unit_parts(self, norm_layer: Callable[[int], nn.Module]) -> UnitParts:
        """The norm/activation parts of a unit in this order (``norm_layer`` unless norm is "none")."""
        return UnitParts(self.order, norm_layer if self.norm == "bn" else None, self.activation)


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}")


class BlockShape(NamedTuple):
    """One block's input width, branch output width and stride.

    Widths count features before an activation's expansion (CReLU's doubling); for
    ``concat`` the block outputs cin + cout features.
    """

    cin: int
    cout: int
    stride: int = 1


@dataclass(frozen=True)
class LayerFactory:
    """What a family's blocks are made of: the only part of a block the families build differently.

    ``branch(shape)`` gives a branch's weight layers W1..Wm and their widths (as
    ``UnitParts.branch`` takes them); ``projection(shape)`` a learned shortcut map (1x1
    conv or linear, no bias unless the family's layers have one); ``gate(shape)`` the layer
    a gate is computed by (with a bias); ``norm(width)`` a norm layer.
    """

    branch: Callable[[BlockShape], tuple[list[nn.Module], list[int]]]
    projection: Callable[[BlockShape], nn.Module]
    gate: Callable[[BlockShape], nn.Module]
    norm: Callable[[int], nn.Module]


def drop_path_rates(drop_path: float, num_blocks: int) -> list[float]:
    """Huang2016's linear decay: block l of L drops its branch with probability p * l / L."""
    return [drop_path * (i + 1) / num_blocks for i in range(num_blocks)]


class BlockBuilder:
    """Builds blocks (and the norm/activation parts of a stem and head) from a config."""

    def __init__(self, cfg: BlockConfig, layers: LayerFactory):
        self.cfg = cfg
        self.layers = layers
        self.parts = cfg.unit_parts(layers.norm)

    def blocks(self, shapes: Sequence[BlockShape]) -> list[Block]:
        """One block per shape, drop-path decaying linearly over them."""
        rates = drop_path_rates(self.cfg.drop_path, len(shapes))
        return [self.block(shape, rate) for shape, rate in zip(shapes, rates)]

    def block(self, shape: BlockShape, drop_path: float = 0.0) -> Block:
        # creation order (branch layers, gate layer, shortcut layer) fixes which random
        # numbers each layer's default init draws, so it must not change
        branch = self.branch(shape, drop_path)
        merge = self.merge(shape)
        shortcut = self.shortcut(shape)
        changes = self.cfg.shortcut == "concat" or shape.stride != 1 or shape.cin != shape.cout
        plain_lesion = OptionA(*shape) if shortcut is None and changes else None
        post = self.parts.post(self.out_width(shape))
        return Block(branch, shortcut, merge, post, changes_shape=changes, lesion_map=plain_lesion)

    def out_width(self, shape: BlockShape) -> int:
        """A block's output width: its branch's, or its input's plus its branch's for concat."""
        return shape.cin + shape.cout if self.cfg.shortcut == "concat" else shape.cout

    def branch(self, shape: BlockShape, drop_path: float) -> Branch:
        """The unit (layers in the config's order, or Fixup's), then its tail."""
        cfg = self.cfg
        weights, widths = self.layers.branch(shape)
        if cfg.scalar == "fixup":
            unit, closing = self._fixup_unit(weights), None
        else:
            unit = self.parts.branch(weights, widths)
            closing = len(unit) - 1 if self.parts.ends_with_norm else None
        tail: list[nn.Module] = []
        if cfg.scalar in ("rezero", "skipinit"):
            tail.append(LearnedScalar(cfg.alpha_init))
        if cfg.branch_scale != 1.0:
            tail.append(FixedScale(cfg.branch_scale))
        if drop_path and cfg.shortcut != "none":
            tail.append(DropPath(drop_path))
        return Branch(*unit, *tail, closing_norm=closing)

    def _fixup_unit(self, weights: list[nn.Module]) -> list[nn.Module]:
        """Fixup's unit: a scalar bias before every layer and activation, a multiplier at the end."""
        mods: list[nn.Module] = []
        for i, layer in enumerate(weights):
            if i:
                mods += [Bias(), activation(self.cfg.activation)[0]]
            mods += [Bias(), layer]
        return mods + [LearnedScalar(1.0), Bias()]

    def classifier(self, features: int, num_classes: int, bias: bool = True) -> list[nn.Module]:
        """The head's last layer, after Fixup's scalar bias where the blocks are Fixup's."""
        fixup_bias = [Bias()] if self.cfg.scalar == "fixup" else []
        return [*fixup_bias, nn.Linear(features, num_classes, bias=bias)]

    def merge(self, shape: BlockShape) -> nn.Module | None:
        """A gate or the concatenation; None for addition."""
        if self.cfg.shortcut in GATES:
            return Gate(self.layers.gate(shape), self.cfg.gate_bias, GATES[self.cfg.shortcut])
        if self.cfg.shortcut == "concat":
            return Concat(shape.cout)
        return None

    def shortcut(self, shape: BlockShape) -> nn.Module | None:
        """The skip path; ``downsample`` says how it changes shape where the block does."""
        kind = self.cfg.shortcut
        if kind == "none":
            return None
        if kind == "projection":
            return Projection(self.layers.projection(shape))
        if kind == "concat" or (shape.cin == shape.cout and shape.stride == 1):
            base: nn.Module = nn.Identity()
        elif self.cfg.downsample == "A":
            base = OptionA(*shape)
        else:
            # He2015's option B has BN after the projection; pre-activation units feed the
            # sum straight into the next unit's own BN, so He2016's code projects with a bare conv
            with_norm = self.cfg.norm == "bn" and not self.parts.preactivated
            base = Projection(self.layers.projection(shape), self.layers.norm(shape.cout) if with_norm else None)
        if kind == "scale":
            return nn.Sequential(base, FixedScale(self.cfg.shortcut_scale))
        if kind == "dropout":
            return nn.Sequential(base, nn.Dropout(self.cfg.shortcut_dropout))
        return base


def init_net(net: BlockNet, cfg: BlockConfig, scheme: str) -> BlockNet:
    """The net-wide init ``scheme``, then what the config's parts own (Fixup, zero-init)."""
    init_weights(net, scheme)
    if cfg.scalar == "fixup":
        fixup_init(net)
    if cfg.zero_init_residual:
        for block in net.blocks:
            block.branch.zero_init_last()
    return net
