"""Batches from tensors in memory: seeded order, augmentation by torch ops, a resumable position.

Epoch ``e``'s order and augmentation draws come from a generator seeded by ``(seed, e)``
alone, so the position ``(epoch, batch)`` is the loader's whole state: a resumed run that
restores it sees exactly the batches an uninterrupted run would have seen.

uint8 images are augmented (pad-and-crop, horizontal flip) on the whole batch with one
gather, then normalized to float; other inputs (token ids, float vectors) pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Split


@dataclass(frozen=True)
class Augment:
    """``crop``: pad by this many zero pixels on each side, then crop a random window of the
    original size (He2015: 4 on CIFAR); ``flip``: mirror half the images horizontally."""

    crop: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        if self.crop < 0:
            raise ConfigError(f"crop padding must be >= 0, got {self.crop}")

    @property
    def active(self) -> bool:
        return self.crop > 0 or self.flip


class Normalizer:
    """uint8 images -> float32 (x/255 - mean)/std, optionally channels-last."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, channels_last: bool):
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * s), -m / s
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return torch.addcmul(self.shift, x.float(), self.scale)


def _mix(seed: int, epoch: int) -> int:
    """A generator seed for (seed, epoch) that does not collide across nearby seeds."""
    return (seed * 1_000_003 + epoch * 7919 + 0x5EED) % (2**63)


class BatchLoader:
    """Training batches of ``batch_size`` from ``split``, shuffled per epoch, forever.

    ``drop_last`` (default) keeps every batch the same size, so a step is a step. Call
    ``next()`` for the next (x, y); ``epoch`` and ``batch`` say where the loader stands,
    ``state_dict``/``load_state_dict`` save and restore that position.

    ``shard=(rank, ranks)``: one of several processes training together (DDP): each draws
    the same order and augmentation and returns its contiguous share of each batch of
    ``batch_size`` (the global batch), so together they see exactly what one process would.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        seed: int = 0,
        augment: Augment | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        shuffle: bool = True,
        drop_last: bool = True,
        shard: tuple[int, int] = (0, 1),
    ):
        n = len(split)
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        rank, ranks = shard
        if not 0 <= rank < ranks or (ranks > 1 and (batch_size % ranks or not drop_last)):
            raise ConfigError(f"a batch of {batch_size} cannot be shared evenly by {ranks} ranks")
        # this rank's rows of each global batch (None: all of them)
        self.share = slice(rank * batch_size // ranks, (rank + 1) * batch_size // ranks) if ranks > 1 else None
        if drop_last and batch_size > n:
            raise ConfigError(f"batch size {batch_size} is larger than the training set ({n} samples)")
        self.device = torch.device(device)
        self.x, self.y = split.x.to(self.device), split.y.to(self.device)
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.augment = augment if augment is not None and augment.active else None
        self.images = self.x.dtype == torch.uint8 and self.x.dim() == 4
        if self.augment is not None and not self.images:
            raise ConfigError("augmentation (crop/flip) applies to uint8 image data only")
        self.normalize = None
        if self.images:
            channels = self.x.shape[1]
            self.normalize = Normalizer(mean or (0.5,) * channels, std or (0.5,) * channels, self.device, channels_last)
        self.steps_per_epoch = n // batch_size if drop_last else -(-n // batch_size)
        self.epoch, self.batch = 0, 0
        self._plan_epoch: int | None = None
        self._order = self._dx = self._dy = self._flip = None

    def _plan(self) -> None:
        """Draw this epoch's order and augmentation parameters (once per epoch)."""
        g = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        self._order = order.to(self.device)
        if self.augment is not None:
            c = self.augment.crop
            self._dx = torch.randint(2 * c + 1, (self.n,), generator=g).to(self.device)
            self._dy = torch.randint(2 * c + 1, (self.n,), generator=g).to(self.device)
            flip = torch.rand(self.n, generator=g) < 0.5 if self.augment.flip else torch.zeros(self.n, dtype=torch.bool)
            self._flip = flip.to(self.device)
        self._plan_epoch = self.epoch

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._plan_epoch != self.epoch:
            self._plan()
        lo = self.batch * self.batch_size
        sel = slice(lo, min(lo + self.batch_size, self.n))
        if self.share is not None:
            sel = slice(lo + self.share.start, lo + self.share.stop)
        idx = self._order[sel]
        x, y = self.x[idx], self.y[idx]
        if self.augment is not None:
            x = self._augment(x, self._dx[sel], self._dy[sel], self._flip[sel])
        if self.normalize is not None:
            x = self.normalize(x)
        self.batch += 1
        if self.batch >= self.steps_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        return x, y

    def _augment(self, x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """Pad-and-crop and flip as one gather: output pixel (i, j) of image b reads padded
        pixel (dy_b + i, dx_b + j), or (dy_b + i, dx_b + W-1-j) when b is flipped."""
        b, c, h, w = x.shape
        p = self.augment.crop
        if p:
            x = F.pad(x, (p, p, p, p))
        wp = w + 2 * p
        ar_h = torch.arange(h, device=x.device)
        ar_w = torch.arange(w, device=x.device)
        rows = dy[:, None] + ar_h  # (B, H)
        cols = torch.where(flip[:, None], dx[:, None] + (w - 1 - ar_w), dx[:, None] + ar_w)  # (B, W)
        flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
        return x.reshape(b, c, -1).gather(2, flat).view(b, c, h, w)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch": self.batch, "seed": self.seed, "n": self.n, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "n", "batch_size"):
            if state[key] != getattr(self, key):
                raise ConfigError(f"loader state does not match: {key} was {state[key]}, now {getattr(self, key)}")
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])


def eval_batches(
    split: Split,
    batch_size: int,
    *,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The split in order, in batches, normalized like training batches (no augmentation)."""
    device = torch.device(device)
    norm = None
    if split.x.dtype == torch.uint8 and split.x.dim() == 4:
        channels = split.x.shape[1]
        norm = Normalizer(mean or (0.5,) * channels, std or (0.5,) * channels, device, channels_last)
    for lo in range(0, len(split), batch_size):
        x = split.x[lo : lo + batch_size].to(device, non_blocking=True)
        y = split.y[lo : lo + batch_size].to(device, non_blocking=True)
        yield (norm(x) if norm is not None else x), y
