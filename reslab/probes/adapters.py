"""Make torchvision- and timm-style ResNets follow the block protocol, without copying weights.

An adapter is a ``BlockNet`` whose stem, blocks and head are built from the original
model's own modules (the same objects, so the same parameters and buffers): a change to
one is a change to the other, and the adapter's forward equals the original's. Each
residual block becomes a ``Block`` with

- branch: the block's layers in the order its ``forward`` calls them
  (torchvision BasicBlock: conv1 bn1 relu conv2 bn2; Bottleneck: ... conv3 bn3;
  timm adds drop_block, aa, se and drop_path where present),
- shortcut: its ``downsample`` (a projection) or the identity,
- post: the activation after the addition (``relu`` / ``act2`` / ``act3``),
- changes_shape: whether it has a ``downsample``.

So lesion and path probes run on these nets unchanged. Both libraries' block activations
are in-place ReLUs; that is safe here because every one of them acts on a tensor the
block itself created (never on the block's input).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..models import Block, BlockNet, follows_block_protocol


def _stages(model: nn.Module) -> list[nn.Module]:
    stages = []
    i = 1
    while hasattr(model, f"layer{i}"):
        stages.append(getattr(model, f"layer{i}"))
        i += 1
    if not stages:
        raise ConfigError(f"{type(model).__name__} has no layer1, layer2, ... stages: not a torchvision/timm ResNet")
    return stages


def _parts(block: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """The named submodules in order, skipping those a block does not have or sets to None."""
    mods = []
    for name in names:
        mod = getattr(block, name, None)
        if mod is not None:
            if not isinstance(mod, nn.Module):
                raise ConfigError(f"{type(block).__name__}.{name} is not a module")
            mods.append(mod)
    return mods


def _need(module: nn.Module, names: Sequence[str]) -> None:
    missing = [n for n in names if not isinstance(getattr(module, n, None), nn.Module)]
    if missing:
        raise ConfigError(f"{type(module).__name__} lacks {', '.join(missing)}: not the expected ResNet structure")


def _block(branch: list[nn.Module], unit: nn.Module, post: nn.Module) -> Block:
    downsample = getattr(unit, "downsample", None)
    return Block(
        branch=nn.Sequential(*branch),
        shortcut=downsample if downsample is not None else nn.Identity(),
        post=post,
        changes_shape=downsample is not None,
    )


class _Flatten(nn.Module):
    """torch.flatten(x, 1), as torchvision's ResNet.forward does after avgpool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, 1)


def adapt_torchvision_resnet(model: nn.Module, input_shape: Sequence[int] = (3, 224, 224)) -> BlockNet:
    """A block-protocol view of a torchvision ``ResNet`` (BasicBlock or Bottleneck units)."""
    _need(model, ("conv1", "bn1", "relu", "maxpool", "avgpool", "fc"))
    blocks = []
    for stage in _stages(model):
        for unit in stage:
            bottleneck = hasattr(unit, "conv3")
            _need(unit, ("conv1", "bn1", "conv2", "bn2", "relu") + (("conv3", "bn3") if bottleneck else ()))
            names = ["conv1", "bn1", "relu", "conv2", "bn2"] + (["relu", "conv3", "bn3"] if bottleneck else [])
            blocks.append(_block(_parts(unit, names), unit, unit.relu))
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    head = nn.Sequential(model.avgpool, _Flatten(), model.fc)
    arch = {"adapted_from": "torchvision", "class": type(model).__name__}
    return _net(model, stem, blocks, head, arch, input_shape)


def _timm_head(model: nn.Module) -> nn.Module:
    """global_pool -> dropout (drop_rate, only active in training) -> fc, as timm's forward_head."""
    _need(model, ("global_pool", "fc"))
    mods = [model.global_pool]
    rate = float(getattr(model, "drop_rate", 0.0) or 0.0)
    if rate:
        drop = nn.Dropout(rate)
        drop.training = model.training  # a new module: start in the original's mode
        mods.append(drop)
    mods.append(model.fc)
    return nn.Sequential(*mods)


def adapt_timm_resnet(model: nn.Module, input_shape: Sequence[int] = (3, 224, 224)) -> BlockNet:
    """A block-protocol view of a timm ``ResNet`` (BasicBlock or Bottleneck, any stem or downsample).

    The branch follows timm's forward: BasicBlock conv1 bn1 drop_block act1 aa conv2 bn2
    se drop_path; Bottleneck conv1 bn1 act1 conv2 bn2 drop_block act2 aa conv3 bn3 se
    drop_path; the activation after the addition is act2 (basic) or act3 (bottleneck).
    """
    _need(model, ("conv1", "bn1", "act1", "maxpool"))
    blocks = []
    for stage in _stages(model):
        for unit in stage:
            if hasattr(unit, "conv3"):
                _need(unit, ("conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "bn3", "act3"))
                names = ["conv1", "bn1", "act1", "conv2", "bn2", "drop_block", "act2", "aa", "conv3", "bn3"]
                post = unit.act3
            else:
                _need(unit, ("conv1", "bn1", "act1", "conv2", "bn2", "act2"))
                names = ["conv1", "bn1", "drop_block", "act1", "aa", "conv2", "bn2"]
                post = unit.act2
            blocks.append(_block(_parts(unit, names + ["se", "drop_path"]), unit, post))
    stem = nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool)
    arch = {"adapted_from": "timm", "class": type(model).__name__}
    return _net(model, stem, blocks, _timm_head(model), arch, input_shape)


def _net(model, stem, blocks, head, arch, input_shape) -> BlockNet:
    net = BlockNet(stem, blocks, head, arch, input_shape=tuple(input_shape))
    for module in (net, net.blocks):  # the new containers take the original's mode
        module.training = model.training
    for block in net.blocks:
        block.training = model.training
    return net


def as_block_net(model: nn.Module, input_shape: Sequence[int] = (3, 224, 224)) -> nn.Module:
    """The model itself if it follows the block protocol, else a torchvision/timm adapter.

    timm's ResNet names its stem activation ``act1``, torchvision's ``relu``; that is how
    the two are told apart.
    """
    if follows_block_protocol(model):
        return model
    if hasattr(model, "act1") and hasattr(model, "layer1"):
        return adapt_timm_resnet(model, input_shape)
    if hasattr(model, "relu") and hasattr(model, "layer1"):
        return adapt_torchvision_resnet(model, input_shape)
    raise ConfigError(
        f"cannot adapt {type(model).__name__}: expected a block-protocol net or a torchvision/timm-style ResNet"
    )
