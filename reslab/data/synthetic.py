"""Synthetic tasks, generated from a seed: the same seed gives the same tensors everywhere.

- ``grid_1d``: the 1-D input grid of the shattered-gradients study (Balduzzi2017 Fig. 1).
- ``identity``: regression y = x on Gaussian vectors (He2015's construction argument).
- ``reversal``, ``sorting``, ``recall``: token tasks for a Transformer encoder, with a
  target per position (``IGNORE`` where a position is not scored).
- ``adding``: the adding problem for recurrent nets (two channels: values and markers).
- ``synthetic-images``: class templates plus noise as uint8 images, a small stand-in for
  an image dataset in tests and examples (it needs no files).

Splits are drawn from one generator in the order test, val, train, so changing the
training size never changes the test or validation data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import IGNORE, Dataset, Split, channel_stats


def grid_1d(points: int = 256, lo: float = -2.0, hi: float = 2.0) -> torch.Tensor:
    """``points`` evenly spaced inputs in [lo, hi] as a (points, 1) float32 tensor."""
    if points < 2 or not lo < hi:
        raise ConfigError(f"grid_1d needs points >= 2 and lo < hi (got {points}, {lo}, {hi})")
    return torch.linspace(lo, hi, points).unsqueeze(1)


def identity(n: int, g: torch.Generator, dim: int = 16) -> Split:
    x = torch.randn(n, dim, generator=g)
    return Split(x, x.clone())


def reversal(n: int, g: torch.Generator, seq_len: int = 16, vocab: int = 16) -> Split:
    """Output the input sequence reversed (every position scored)."""
    x = torch.randint(vocab, (n, seq_len), generator=g)
    return Split(x, x.flip(1))


def sorting(n: int, g: torch.Generator, seq_len: int = 16, vocab: int = 16) -> Split:
    """Output the input tokens in ascending order (every position scored)."""
    x = torch.randint(vocab, (n, seq_len), generator=g)
    return Split(x, x.sort(dim=1).values)


def recall(n: int, g: torch.Generator, seq_len: int = 16, vocab: int = 16) -> Split:
    """Associative recall: ``k1 v1 k2 v2 ... kp vp q [q]`` -> the value stored under key q.

    Keys are distinct ids from the lower half of the vocabulary, values any id from the
    upper half; only the last position is scored.
    """
    pairs = (seq_len - 1) // 2
    keys_available = vocab // 2
    if pairs < 1 or pairs > keys_available:
        raise ConfigError(f"recall needs 1 <= (seq_len-1)//2 <= vocab//2 (seq_len {seq_len}, vocab {vocab})")
    keys = torch.rand(n, keys_available, generator=g).argsort(dim=1)[:, :pairs]
    values = torch.randint(keys_available, vocab, (n, pairs), generator=g)
    which = torch.randint(pairs, (n,), generator=g)
    rows = torch.arange(n)
    x = torch.empty(n, seq_len, dtype=torch.long)
    x[:, 0 : 2 * pairs : 2], x[:, 1 : 2 * pairs : 2] = keys, values
    x[:, 2 * pairs :] = keys[rows, which].unsqueeze(1)
    y = torch.full((n, seq_len), IGNORE, dtype=torch.long)
    y[:, -1] = values[rows, which]
    return Split(x, y)


def adding(n: int, g: torch.Generator, seq_len: int = 50) -> Split:
    """The adding problem: channel 0 holds U(0, 1) values, channel 1 marks two of them
    (one in each half); the target is the sum of the two marked values. Predicting the
    constant 1 gives MSE 1/6, the level a net that cannot bridge the sequence stays at.
    """
    if seq_len < 2:
        raise ConfigError(f"adding needs seq_len >= 2, got {seq_len}")
    half = seq_len // 2
    values = torch.rand(n, seq_len, generator=g)
    first = torch.randint(half, (n,), generator=g)
    second = torch.randint(half, seq_len, (n,), generator=g)
    marks = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    y = (values * marks).sum(1, keepdim=True)
    return Split(torch.stack([values, marks], dim=2), y)


def template_images(
    n: int, g: torch.Generator, classes: int = 10, channels: int = 1, size: int = 16, noise: float = 0.35
) -> Split:
    """uint8 images: a smooth random template per class plus Gaussian pixel noise."""
    templates = torch.rand(classes, channels, 4, 4, generator=torch.Generator().manual_seed(12345))
    templates = F.interpolate(templates, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.randint(classes, (n,), generator=g)
    x = templates[y] + noise * torch.randn(n, channels, size, size, generator=g)
    return Split((x.clamp(0, 1) * 255).round().to(torch.uint8), y)


# name -> (generator, task, default sizes (train, val, test)); generator options pass through make()
TASKS: dict[str, tuple[Callable[..., Split], str, tuple[int, int, int]]] = {
    "identity": (identity, "regression", (4096, 512, 512)),
    "reversal": (reversal, "tokens", (20000, 1000, 1000)),
    "sorting": (sorting, "tokens", (20000, 1000, 1000)),
    "recall": (recall, "tokens", (20000, 1000, 1000)),
    "adding": (adding, "regression", (10000, 1000, 1000)),
    "synthetic-images": (template_images, "classification", (2000, 500, 500)),
}


def make(
    name: str,
    seed: int = 0,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    **options: Any,
) -> Dataset:
    """The synthetic dataset ``name`` with sizes and task options (e.g. ``seq_len=32``)."""
    fn, task, (n_train, n_val, n_test) = TASKS[name]
    n_train = n_train if train_size is None else train_size
    n_val = n_val if val_size is None else val_size
    n_test = n_test if test_size is None else test_size
    if n_train < 1 or n_val < 0 or n_test < 0:
        raise ConfigError(f"{name}: sizes must be train >= 1, val >= 0, test >= 0 (got {n_train}, {n_val}, {n_test})")
    g = torch.Generator().manual_seed(seed)
    try:
        test, val, train = (fn(n, g, **options) for n in (n_test, n_val, n_train))
    except TypeError as exc:
        raise ConfigError(f"bad option for dataset {name}: {exc}") from None
    sample_shape = tuple(train.x.shape[1:])
    info: dict[str, Any] = {"seed": seed, **options}
    splits = (name, task, train, val or None, test or None, sample_shape)
    described = {"source": f"generated from seed {seed}", "info": info}
    if task == "tokens":
        vocab = options.get("vocab", 16)
        return Dataset(*splits, vocab, vocab_size=vocab, **described)
    if task == "regression":
        return Dataset(*splits, train.y.shape[1], **described)
    classes = options.get("classes", 10)
    mean, std = channel_stats(train.x)
    classes_named = tuple(f"class {i}" for i in range(classes))
    return Dataset(*splits, classes, classes=classes_named, mean=mean, std=std, **described)
