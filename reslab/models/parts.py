"""Small modules that blocks are assembled from: shortcuts, scalars, activations.

Every module here is a plain class (no lambdas), so every model pickles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

# ----------------------------------------------------------------------------- shortcuts


class OptionA(nn.Module):
    """He2015 option A: stride-s subsampling plus zero-padded extra channels; no parameters.

    Keeping the shortcut parameter-free is what lets a plain and a residual net of the
    same depth have exactly the same parameter count.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        if out_channels < in_channels:
            raise ConfigError("option A can only add channels")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        if extra:
            before = extra // 2
            x = F.pad(x, (0, 0, 0, 0, before, extra - before))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, stride={self.stride}"


class Projection(nn.Module):
    """A 1x1 convolution (or linear map) shortcut, optionally followed by a norm.

    With BN this is He2015's option B; without, He2016's "1x1 conv shortcut".
    """

    def __init__(self, layer: nn.Module, norm: nn.Module | None = None):
        super().__init__()
        self.layer = layer
        self.norm = norm if norm is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layer(x))


class Scaled(nn.Module):
    """He2016 "constant scaling": the shortcut (or a branch) multiplied by a fixed lambda."""

    def __init__(self, inner: nn.Module, scale: float):
        super().__init__()
        self.inner = inner
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class DroppedOut(nn.Module):
    """He2016 "dropout shortcut": dropout applied to the shortcut signal."""

    def __init__(self, inner: nn.Module, p: float):
        super().__init__()
        self.inner = inner
        self.dropout = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.inner(x))


# ----------------------------------------------------------------------------- scalars


class Scale(nn.Module):
    """A learnable scalar multiplier: ReZero/SkipInit's alpha (init 0), Fixup's multiplier (1)."""

    def __init__(self, init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class Bias(nn.Module):
    """A learnable scalar bias (Fixup puts one before each conv and activation)."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class Multiply(nn.Module):
    """A fixed (not learned) multiplier, e.g. beta-scaled branches or "0.5 both" scaling."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class DropPath(nn.Module):
    """Stochastic depth (Huang2016): drop the whole branch for a random subset of samples.

    Uses the inverted convention (survivors scaled by 1/keep in training, nothing at test
    time), which is equivalent to the paper's test-time scaling by the survival probability.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


# ----------------------------------------------------------------------------- activations


class CReLU(nn.Module):
    """Concatenated ReLU [relu(x), relu(-x)] along the feature dim; doubles the width.

    With looks-linear weights [W, -W] the next layer computes W x, so a deep CReLU net is
    linear at initialization (Balduzzi2017, Sec. 5).
    """

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(x), F.relu(-x)], dim=self.dim)


def activation(name: str) -> tuple[nn.Module, int]:
    """An activation module and the factor by which it multiplies the feature width."""
    if name == "relu":
        return nn.ReLU(), 1
    if name == "crelu":
        return CReLU(), 2
    if name == "tanh":
        return nn.Tanh(), 1
    raise ConfigError(f"unknown activation {name!r} (choose relu, crelu or tanh)")
