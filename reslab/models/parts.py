"""Small modules that blocks are assembled from: shortcuts, scalars, branches, activations.

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


# ----------------------------------------------------------------------------- scalars


class LearnedScalar(nn.Module):
    """A learned scalar multiplier: ReZero/SkipInit's alpha (init 0), Fixup's multiplier (init 1)."""

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


class FixedScale(nn.Module):
    """A fixed (not learned) multiplier: He2016's constant shortcut scaling, beta-scaled
    branches (Balduzzi2017), "0.5 both" scaling."""

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


# ----------------------------------------------------------------------------- branches


class Branch(nn.Sequential):
    """A block's residual function F: the unit (weight layers with their norms and
    activations), then its tail (learned scalar, fixed scale, drop-path).

    It owns the init rules that depend on how it is built, applied after the net-wide init
    (timm's ``zero_init_last``): ``closing_norm`` is the index of the norm that ends the
    unit, if one does.
    """

    def __init__(self, *modules: nn.Module, closing_norm: int | None = None):
        super().__init__(*modules)
        self.closing_norm = closing_norm

    def weight_layers(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    def zero_init_last(self) -> None:
        """Zero the scale of the norm that ends the unit (Goyal et al. 2017), so the branch
        starts at zero and its block as the shortcut; without such a norm, do nothing."""
        if self.closing_norm is not None:
            nn.init.zeros_(self[self.closing_norm].weight)

    def fixup_init(self, num_branches: int) -> None:
        """Fixup (Zhang et al. 2019) for one of L = ``num_branches`` branches of m layers:
        He-init the first m-1 layers scaled by L^(-1/(2m-2)), zero the last."""
        layers = self.weight_layers()
        for layer in layers[:-1]:
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            layer.weight.data.mul_(num_branches ** (-1.0 / (2 * len(layers) - 2)))
        nn.init.zeros_(layers[-1].weight)

    def extra_repr(self) -> str:
        return "" if self.closing_norm is None else f"closing_norm={self.closing_norm}"


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
