"""Initialization schemes, applied after a net is built.

- ``small``: N(0, 0.01^2), the classic recipe under which deep plain nets vanish;
- ``unit``: N(0, 1), under which they explode;
- ``glorot``: Glorot & Bengio (2010), variance 2 / (fan_in + fan_out);
- ``he``: He et al. (2015, "Delving deep"), variance 2 / fan_in (torchvision uses fan_out
  for convolutions; fan_in keeps the forward signal's scale, which is what the vanishing
  study is about);
- ``looks-linear``: Balduzzi2017's LL init for CReLU nets: W = [W0, -W0] with W0
  orthogonal, so that W·CReLU(x) = W0 x and the whole net is linear at initialization.
Biases start at zero; norm layers at weight 1, bias 0. Gate biases are set by the gates.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .merges import Gate

SCHEMES = ("small", "unit", "glorot", "he", "looks-linear")


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    gate_layers = {id(m.gate_layer) for m in model.modules() if isinstance(m, Gate)}
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d)) and id(m) not in gate_layers]


def _looks_linear_(weight: torch.Tensor) -> None:
    """Fill weight (out, 2*half, ...) with [W0, -W0]; for odd fan-in use plain orthogonal."""
    out_features, in_features = weight.shape[:2]
    if in_features % 2:
        nn.init.orthogonal_(weight)
        return
    half = torch.empty(out_features, in_features // 2, *weight.shape[2:])
    nn.init.orthogonal_(half)
    with torch.no_grad():
        weight.copy_(torch.cat([half, -half], dim=1))


def init_weights(model: nn.Module, scheme: str = "he") -> nn.Module:
    """Initialize every linear/conv weight of ``model`` in place with ``scheme``."""
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown init {scheme!r}; choose one of {', '.join(SCHEMES)}")
    for layer in _weighted_layers(model):
        w = layer.weight
        if scheme == "small":
            nn.init.normal_(w, 0.0, 0.01)
        elif scheme == "unit":
            nn.init.normal_(w, 0.0, 1.0)
        elif scheme == "glorot":
            nn.init.xavier_normal_(w)
        elif scheme == "he":
            nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
        else:
            _looks_linear_(w)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def fixup_init(net: nn.Module) -> nn.Module:
    """Fixup (Zhang et al. 2019): rescale so a deep net without normalization trains.

    Every residual branch (a ``Branch``) applies Fixup's rule for L branches itself; the
    classifier (the last Linear of ``net.head``) starts at zero.
    """
    branches = [b.branch for b in net.blocks if b.shortcut is not None]
    for branch in branches:
        branch.fixup_init(len(branches))
    classifier = [m for m in net.head.modules() if isinstance(m, nn.Linear)][-1]
    nn.init.zeros_(classifier.weight)
    if classifier.bias is not None:
        nn.init.zeros_(classifier.bias)
    return net
