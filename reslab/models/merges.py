"""How a block combines its branch output f and its shortcut output s.

Each merge also says what the block computes when one path is deleted, so that lesion
and path analyses work for every merge, not just addition:
- ``skip_only(s, x)``: the branch is removed (Veit2016's lesion);
- ``branch_only(f, x)``: the shortcut is removed.
``x`` is the block input, which gates are computed from.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class Add(nn.Module):
    """out = f + s; with no shortcut (a plain block) out = f."""

    def forward(self, f: torch.Tensor, s: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        return f if s is None else f + s

    def skip_only(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return s

    def branch_only(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return f


class Gate(nn.Module):
    """A learned gate g = sigmoid(W x + b) computed from the block input.

    kind="exclusive": out = g * f + (1 - g) * s. With s = x this is the highway layer
    H·T + x·(1 − T) of Srivastava2015, and He2016's "exclusive gating".
    kind="shortcut-only": out = f + (1 - g) * s (He2016's "shortcut-only gating").

    A negative bias b starts the gate closed (g ~ 0), so the block starts near the
    identity: Srivastava2015 use b = -1 to -3, He2016 compare b = 0 and b = -6.
    """

    def __init__(self, gate_layer: nn.Module, bias: float = -2.0, kind: str = "exclusive"):
        super().__init__()
        if kind not in ("exclusive", "shortcut-only"):
            raise ConfigError(f"unknown gate kind {kind!r}")
        self.gate_layer = gate_layer
        self.kind = kind
        self.bias_init = float(bias)
        nn.init.constant_(gate_layer.bias, bias)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gate_layer(x))

    def forward(self, f: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(x)
        carry = (1 - g) * s
        return (g * f if self.kind == "exclusive" else f) + carry

    def skip_only(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (1 - self.gate(x)) * s

    def branch_only(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.gate(x) * f if self.kind == "exclusive" else f

    def extra_repr(self) -> str:
        return f"kind={self.kind}, bias_init={self.bias_init}"


class Concat(nn.Module):
    """DenseNet-style merge: out = [s, f] along the channel dim; the width grows by f's."""

    def __init__(self, growth: int, dim: int = 1):
        super().__init__()
        self.growth, self.dim = growth, dim

    def forward(self, f: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([s, f], dim=self.dim)

    def _zeros_like_branch(self, s: torch.Tensor) -> torch.Tensor:
        shape = list(s.shape)
        shape[self.dim] = self.growth
        return s.new_zeros(shape)

    def skip_only(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # the deleted branch contributes zero features, so the output keeps its shape
        return torch.cat([s, self._zeros_like_branch(s)], dim=self.dim)

    def branch_only(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shape = list(f.shape)
        shape[self.dim] = x.shape[self.dim]
        return torch.cat([f.new_zeros(shape), f], dim=self.dim)

    def extra_repr(self) -> str:
        return f"growth={self.growth}"
