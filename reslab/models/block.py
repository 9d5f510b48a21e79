"""The one block abstraction: ``out = post(merge(branch(x), shortcut(x)))``.

Every variant in the zoo (plain, residual, pre-activation, highway, gated, dense, ReZero,
Fixup, drop-path) is a ``Block`` with different parts, never a subclass.

The block protocol lets analyses switch a block, without copying weights, between modes:
- ``full``: the normal computation;
- ``skip-only``: the branch is deleted and the block outputs its shortcut path (for a
  plain block: the identity, or a parameter-free option-A map where the shape changes);
- ``branch-only``: the shortcut is deleted;
- ``grad-skip-only`` / ``grad-branch-only``: the forward pass is the normal one but the
  backward signal may pass only through the shortcut / only through the branch. This is
  Veit2016's path-sampling method: forward through the whole net, backward along one path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import ConfigError
from .merges import Add

MODES = ("full", "skip-only", "branch-only", "grad-skip-only", "grad-branch-only")


class Block(nn.Module):
    """A residual-style unit assembled from parts.

    Args:
        branch: the residual function F (its last module may be a scalar such as ReZero's
            alpha or a DropPath).
        shortcut: the skip path; ``None`` makes a plain block (no skip connection).
        merge: how branch and shortcut combine (default: addition).
        post: applied after the merge (e.g. the ReLU of the original ResNet unit).
        changes_shape: True where the block changes the tensor shape (downsampling or a
            width change), which analyses mark separately.
        lesion_map: for a plain block, what ``skip-only`` outputs (identity by default).
    """

    def __init__(
        self,
        branch: nn.Module,
        shortcut: nn.Module | None = None,
        merge: nn.Module | None = None,
        post: nn.Module | None = None,
        changes_shape: bool = False,
        lesion_map: nn.Module | None = None,
    ):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.merge = merge if merge is not None else Add()
        self.post = post if post is not None else nn.Identity()
        self.changes_shape = bool(changes_shape)
        self.lesion_map = lesion_map
        self._mode = "full"

    @property
    def has_shortcut(self) -> bool:
        return self.shortcut is not None

    @property
    def can_skip(self) -> bool:
        """Whether ``skip-only`` is defined (false for a shape-changing plain block)."""
        return self.shortcut is not None or self.lesion_map is not None or not self.changes_shape

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ConfigError(f"unknown block mode {value!r}; choose one of {', '.join(MODES)}")
        self._mode = value

    def skip_path(self, x: torch.Tensor) -> torch.Tensor:
        """What the block outputs when its branch is deleted."""
        if self.shortcut is not None:
            return self.merge.skip_only(self.shortcut(x), x)
        if self.lesion_map is not None:
            return self.lesion_map(x)
        if self.changes_shape:
            raise ConfigError("a plain block that changes shape has no skip-only path")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self._mode
        if mode == "skip-only":
            return self.skip_path(x)
        f = self.branch(x)
        if self.shortcut is None:
            return self.post(self.merge(f, None, x))
        if mode == "branch-only":
            return self.post(self.merge.branch_only(f, x))
        s = self.shortcut(x)
        if mode == "grad-skip-only":
            f = f.detach()
        elif mode == "grad-branch-only":
            s = s.detach()
        return self.post(self.merge(f, s, x))

    def extra_repr(self) -> str:
        return f"mode={self._mode}, changes_shape={self.changes_shape}"


def set_modes(blocks: Iterable[Block], mode: str) -> None:
    for block in blocks:
        block.mode = mode


@contextmanager
def block_modes(blocks: Iterable[Block], modes: str | Iterable[str]) -> Iterator[None]:
    """Temporarily set block modes (one mode for all, or one per block); always restores."""
    blocks = list(blocks)
    wanted = [modes] * len(blocks) if isinstance(modes, str) else list(modes)
    if len(wanted) != len(blocks):
        raise ConfigError(f"got {len(wanted)} modes for {len(blocks)} blocks")
    before = [b.mode for b in blocks]
    try:
        for block, mode in zip(blocks, wanted):
            block.mode = mode
        yield
    finally:
        for block, mode in zip(blocks, before):
            block.mode = mode
