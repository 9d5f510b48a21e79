"""CIFAR-style convolutional nets (He2015 Sec. 4.2; He2016; DenseNet), as stacks of Blocks.

Depth counts weight layers as the papers do: 6n+2 with basic blocks (two 3x3 convs) and
9n+2 with bottleneck blocks (1x1, 3x3, 1x1), n blocks in each of three stages of widths
16/32/64 (bottleneck outputs are 4x wider). Any input channel count and image size work
(global average pooling before the classifier), so 28x28x1 Fashion-MNIST and 32x32x3
CIFAR use the same nets.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from .block import Block
from .init import fixup_init, init_weights
from .merges import Concat, Gate
from .net import BlockNet
from .parts import Bias, DropPath, DroppedOut, Multiply, OptionA, Projection, Scale, Scaled
from .units import UnitParts, check_order

SHORTCUTS = (
    "none",  # plain net: no skip connection
    "A",  # identity; option A (subsample + zero channels) where the shape changes
    "B",  # identity; 1x1 projection + BN where the shape changes
    "conv1x1",  # He2016: a 1x1 conv on every shortcut
    "scale",  # He2016: shortcut multiplied by shortcut_scale
    "dropout",  # He2016: dropout on the shortcut
    "exclusive-gate",  # He2016 / highway: g*F + (1-g)*x
    "shortcut-gate",  # He2016: F + (1-g)*x
)
SCALARS = (None, "rezero", "skipinit", "fixup")
BOTTLENECK_EXPANSION = 4


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def conv1x1(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=bias)


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


def _shortcut(kind: str, projection: str, cin: int, cout: int, stride: int, opts: dict) -> nn.Module | None:
    """The skip path of one block; ``projection`` says how a shape change is handled."""
    if kind == "none":
        return None
    if kind == "conv1x1":
        return Projection(conv1x1(cin, cout, stride))
    if cin == cout and stride == 1:
        base: nn.Module = nn.Identity()
    elif (kind if kind in ("A", "B") else projection) == "A":
        base = OptionA(cin, cout, stride)
    else:
        # He2015's option B has BN after the projection; pre-activation units feed the
        # sum straight into the next unit's own BN, so He2016's code projects with a bare conv
        norm = nn.BatchNorm2d(cout) if opts["projection_norm"] else None
        base = Projection(conv1x1(cin, cout, stride), norm)
    if kind == "scale":
        return Scaled(base, opts["shortcut_scale"])
    if kind == "dropout":
        return DroppedOut(base, opts["shortcut_dropout"])
    return base


def cifar_resnet(
    depth: int = 20,
    *,
    bottleneck: bool = False,
    shortcut: str = "A",
    projection: str = "A",
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
        shortcut: one of ``SHORTCUTS``.
        projection: "A" or "B": how the scale/dropout/gate shortcuts change shape.
        order: where BN and ReLU sit in a unit (``units.ORDERS``; He2016 Table 2).
        norm: "bn" or "none".
        scalar: "rezero"/"skipinit" (a learnable scalar, init ``alpha_init``, at the end of
            every branch) or "fixup" (Fixup's biases, multiplier and initialization);
            all three need ``norm="none"``.
        drop_path: drop-path probability of the last block; block l of L gets
            drop_path * l / L (Huang2016's linear decay).
        branch_scale: a fixed multiplier on every branch (e.g. 0.5 for He2016's
            "0.5 both" scaling, or beta for Balduzzi2017's scaled branches).
        gate_bias: initial bias of the gates (He2016 use 0 and -6).
        zero_init_residual: start the last BN of every branch at zero (Goyal et al.), so
            each residual block starts as the identity.
    """
    check_order(order)
    if shortcut not in SHORTCUTS:
        raise ConfigError(f"unknown shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}")
    if projection not in ("A", "B"):
        raise ConfigError(f"projection must be 'A' or 'B', got {projection!r}")
    if norm not in ("bn", "none"):
        raise ConfigError(f"norm must be 'bn' or 'none', got {norm!r}")
    if scalar not in SCALARS:
        raise ConfigError(f"unknown scalar {scalar!r}; choose rezero, skipinit or fixup")
    if scalar is not None and (norm != "none" or shortcut == "none"):
        raise ConfigError(f"scalar={scalar!r} needs norm='none' and a shortcut")
    if scalar == "fixup" and order != "post":
        raise ConfigError("Fixup is defined for the original (post-activation) unit order")
    if len(widths) < 1 or any(w < 1 for w in widths):
        raise ConfigError(f"widths must be positive, got {tuple(widths)}")
    n = blocks_per_stage(depth, bottleneck)
    arch = dict(locals())
    parts = UnitParts(order, nn.BatchNorm2d if norm == "bn" else None)
    opts = dict(
        shortcut_scale=shortcut_scale,
        shortcut_dropout=shortcut_dropout,
        projection_norm=norm == "bn" and not parts.preactivated,
    )
    expansion = BOTTLENECK_EXPANSION if bottleneck else 1
    total = n * len(widths)

    stem = nn.Sequential(conv3x3(in_channels, widths[0]), *parts.stem_tail(widths[0]))
    blocks: list[Block] = []
    cin = widths[0]
    for stage, width in enumerate(widths):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            cout = width * expansion
            if bottleneck:
                layers = [conv1x1(cin, width), conv3x3(width, width, stride), conv1x1(width, cout)]
                layer_widths = [cin, width, width, cout]
            else:
                layers = [conv3x3(cin, width, stride), conv3x3(width, width)]
                layer_widths = [cin, width, cout]
            if scalar == "fixup":
                branch_mods = _fixup_branch(layers)
            else:
                branch_mods = parts.branch(layers, layer_widths)
                if scalar is not None:
                    branch_mods.append(Scale(alpha_init))
            if branch_scale != 1.0:
                branch_mods.append(Multiply(branch_scale))
            if drop_path and shortcut != "none":
                branch_mods.append(DropPath(drop_path * (len(blocks) + 1) / total))
            changes = stride != 1 or cin != cout
            merge = None
            if shortcut.endswith("-gate"):
                kind = "exclusive" if shortcut == "exclusive-gate" else "shortcut-only"
                merge = Gate(conv1x1(cin, cout, stride, bias=True), gate_bias, kind)
            blocks.append(
                Block(
                    branch=nn.Sequential(*branch_mods),
                    shortcut=_shortcut(shortcut, projection, cin, cout, stride, opts),
                    merge=merge,
                    post=parts.post(cout),
                    changes_shape=changes,
                    lesion_map=OptionA(cin, cout, stride) if shortcut == "none" and changes else None,
                )
            )
            cin = cout
    head_mods = parts.head_start(cin) + [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if scalar == "fixup":
        head_mods.append(Bias())
    head = nn.Sequential(*head_mods, nn.Linear(cin, num_classes))
    net = BlockNet(stem, blocks, head, arch, input_shape=(in_channels, image_size, image_size))
    init_weights(net, init)
    if scalar == "fixup":
        fixup_init(net, branch_layers=len(layers))
    if zero_init_residual:
        for block in net.blocks:
            norms = [m for m in block.branch.modules() if isinstance(m, nn.BatchNorm2d)]
            if norms and order in ("post", "relu-preact"):
                nn.init.zeros_(norms[-1].weight)
    return net


def _fixup_branch(layers: list[nn.Module]) -> list[nn.Module]:
    """Fixup's branch: a scalar bias before every conv and activation, a multiplier at the end."""
    mods: list[nn.Module] = []
    for i, layer in enumerate(layers):
        if i:
            mods += [Bias(), nn.ReLU()]
        mods += [Bias(), layer]
    return mods + [Scale(1.0), Bias()]


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
    """
    if (depth - 4) % stages or depth <= 4:
        raise ConfigError(f"densenet depth must be {stages}n+4 for n >= 1 (e.g. 13, 22, 40, 100); got {depth}")
    if not 0 < compression <= 1:
        raise ConfigError(f"compression must be in (0, 1], got {compression}")
    per_stage = (depth - 4) // stages
    arch = dict(locals())
    width = stem_width or 2 * growth
    stem = nn.Sequential(conv3x3(in_channels, width))
    blocks: list[Block] = []
    for stage in range(stages):
        for _ in range(per_stage):
            branch = [nn.BatchNorm2d(width), nn.ReLU(), conv3x3(width, growth)]
            if drop_path:
                branch.append(DropPath(drop_path))
            blocks.append(Block(nn.Sequential(*branch), nn.Identity(), Concat(growth), changes_shape=True))
            width += growth
        if stage < stages - 1:
            out = int(width * compression)
            transition = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), conv1x1(width, out), nn.AvgPool2d(2))
            blocks.append(Block(transition, None, changes_shape=True))
            width = out
    head = nn.Sequential(
        nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)
    )
    net = BlockNet(stem, blocks, head, arch, input_shape=(in_channels, image_size, image_size))
    return init_weights(net, init)
