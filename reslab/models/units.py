"""Where normalization and activation sit in a unit: He2016's Table 2 orders.

A unit's branch is a chain of weight layers W1..Wm. The order decides what goes before
the first layer, between layers, after the last one, and after the addition (``post``):

| order             | before W1 | between | after Wm | post (after merge) |
|-------------------|-----------|---------|----------|--------------------|
| post (He2015)     |           | N R     | N        | R                  |
| bn-after-add      |           | N R     |          | N R                |
| relu-before-add   |           | N R     | N R      |                    |
| relu-preact       | R         | N R     | N        |                    |
| preact (He2016)   | N R       | N R     |          |                    |

N is the norm layer (skipped when there is none) and R the activation.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import ConfigError
from .parts import activation

ORDERS = ("post", "bn-after-add", "relu-before-add", "relu-preact", "preact")

_LAYOUT = {
    #                 before    after     post
    "post": ("", "N", "R"),
    "bn-after-add": ("", "", "NR"),
    "relu-before-add": ("", "NR", ""),
    "relu-preact": ("R", "N", ""),
    "preact": ("NR", "", ""),
}


def check_order(order: str) -> None:
    if order not in ORDERS:
        raise ConfigError(f"unknown unit order {order!r}; choose one of {', '.join(ORDERS)}")


class UnitParts:
    """Builds the norm/activation modules of a unit in a given order.

    ``norm`` makes a norm layer for a width (or is None for no normalization); ``act`` is
    an activation name. ``expansion`` is how much the activation widens its input (2 for
    CReLU), which the caller needs for the next layer's input width.
    """

    def __init__(self, order: str, norm: Callable[[int], nn.Module] | None, act: str = "relu"):
        check_order(order)
        self.order = order
        self.norm = norm
        self.act = act
        self.expansion = activation(act)[1]

    def _ops(self, code: str, width: int) -> list[nn.Module]:
        mods: list[nn.Module] = []
        for op in code:
            if op == "N" and self.norm is not None:
                mods.append(self.norm(width))
            elif op == "R":
                mods.append(activation(self.act)[0])
        return mods

    def branch(self, layers: list[nn.Module], widths: list[int]) -> list[nn.Module]:
        """Interleave ``layers`` (W1..Wm) with norms/activations.

        ``widths[i]`` is the input width of layer i (before activation expansion) and
        ``widths[-1]`` the output width of the last layer.
        """
        before, after, _ = _LAYOUT[self.order]
        mods = self._ops(before, widths[0])
        for i, layer in enumerate(layers):
            if i:
                mods += self._ops("NR", widths[i])
            mods.append(layer)
        return mods + self._ops(after, widths[-1])

    @property
    def ends_with_norm(self) -> bool:
        """Whether the branch's last module is a norm (whose scale zero-init can start at 0)."""
        return self.norm is not None and _LAYOUT[self.order][1].endswith("N")

    def post(self, width: int) -> nn.Module:
        ops = self._ops(_LAYOUT[self.order][2], width)
        return nn.Sequential(*ops) if ops else nn.Identity()

    @property
    def preactivated(self) -> bool:
        """Whether the branch starts with its own activation, so the stem should not end with one."""
        return self.order in ("preact", "relu-preact")

    def stem_tail(self, width: int) -> list[nn.Module]:
        """What follows the stem's layer: N R, except before pre-activation units."""
        if self.order == "preact":
            return []
        if self.order == "relu-preact":
            return self._ops("N", width)
        return self._ops("NR", width)

    def head_start(self, width: int) -> list[nn.Module]:
        """What precedes pooling/classifier: the final activation pre-activation nets need."""
        if self.order == "preact":
            return self._ops("NR", width)
        if self.order == "relu-preact":
            return self._ops("R", width)
        return []
