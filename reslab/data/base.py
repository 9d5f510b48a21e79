"""What every dataset loader returns: splits of in-memory tensors plus what a model needs to know.

Images are uint8 ``(N, C, H, W)`` tensors (normalized in batch by the loader, so a dataset
costs one byte per pixel); labels are int64. Token tasks hold int64 ids with per-position
targets (``IGNORE`` where a position is not scored); regression tasks hold float32 inputs
and targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError

TASKS = ("classification", "tokens", "regression")
IGNORE = -100  # target id of an unscored position (PyTorch's cross-entropy ignore_index)


@dataclass
class Split:
    """Inputs ``x`` and targets ``y`` with the same first dimension."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"split has {len(self.x)} inputs but {len(self.y)} targets")

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: torch.Tensor | slice) -> Split:
        return Split(self.x[index], self.y[index])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Dataset:
    """Train/val/test splits and the facts a model and a loader need.

    ``shape`` is one sample's shape ((C, H, W) for images, (T,) for token sequences,
    (T, D) for sequences of vectors, (D,) for vectors). ``num_classes`` is the number of
    classes (classification), the output vocabulary (tokens) or the target size
    (regression). ``mean``/``std`` are per-channel statistics of the training split on
    [0, 1], for uint8 images only. ``val`` is None when no validation split was held out.
    """

    name: str
    task: str
    train: Split
    val: Split | None
    test: Split | None
    shape: tuple[int, ...]
    num_classes: int
    classes: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    vocab_size: int | None = None
    source: str = ""  # where the data came from (a path, or "generated from seed N")
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    @property
    def is_image(self) -> bool:
        return self.train.x.dtype == torch.uint8 and len(self.shape) == 3

    def model_inputs(self) -> dict[str, Any]:
        """Builder arguments this data implies (the trainer passes those a builder accepts).

        A CNN gets ``in_channels``/``image_size``, an MLP ``input_shape``, a Transformer
        ``vocab_size``/``seq_len``, a recurrent net ``input_size``/``seq_len``; every
        model gets ``num_classes``.
        """
        out: dict[str, Any] = {"num_classes": self.num_classes, "input_shape": tuple(self.shape)}
        if self.is_image:
            out["in_channels"] = self.shape[0]
            out["image_size"] = self.shape[1]
        elif self.task == "tokens":
            out["vocab_size"] = self.vocab_size
            out["seq_len"] = self.shape[0]
        elif len(self.shape) == 2:  # a sequence of vectors, e.g. the adding problem
            out["seq_len"], out["input_size"] = self.shape
        return out

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (sizes, shape, source) for run records."""
        return {
            "name": self.name,
            "task": self.task,
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "train": len(self.train),
            "val": len(self.val) if self.val is not None else 0,
            "test": len(self.test) if self.test is not None else 0,
            "source": self.source,
            **self.info,
        }


def hold_out(
    train: Split, val_size: int, train_size: int | None, split_seed: int, name: str
) -> tuple[Split, Split | None]:
    """Split a training set into (train, val) with a seeded permutation.

    The validation split is fixed by ``split_seed`` alone, so every training seed sees the
    same held-out images; ``train_size`` then takes the first images of the rest (a
    nested subset: a smaller subset is part of every larger one).
    """
    n = len(train)
    if val_size < 0 or val_size >= n:
        raise ConfigError(f"{name}: val_size must be in [0, {n - 1}], got {val_size}")
    available = n - val_size
    if train_size is not None and not 0 < train_size <= available:
        raise ConfigError(
            f"{name}: train_size must be in [1, {available}] (the training set has {n} images, "
            f"{val_size} held out for validation), got {train_size}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if train_size is not None:
        train_idx = train_idx[:train_size]
    # sorted indices keep the gather cache-friendly; the loader shuffles per epoch anyway
    val = train.take(val_idx.sort().values) if val_size else None
    return train.take(train_idx.sort().values), val


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on [0, 1] of uint8 images (N, C, H, W), in float64."""
    mean, std = [], []
    for c in range(x.shape[1]):
        plane = x[:, c].double().div_(255.0)
        mean.append(float(plane.mean()))
        std.append(float(plane.std()))
    return tuple(mean), tuple(max(s, 1e-6) for s in std)
