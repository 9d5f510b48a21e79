"""Loss and error for each kind of task, and evaluation of a model on a split.

- classification: cross-entropy; error = share of wrong predictions;
- tokens: cross-entropy per scored position (``IGNORE`` targets are skipped); error =
  share of wrong scored positions;
- regression: mean squared error; "error" is the MSE itself.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import IGNORE, Dataset, Split
from ..data.loader import eval_batches
from ..errors import ConfigError
from .recipe import PRECISIONS


class Task:
    def __init__(self, kind: str, label_smoothing: float = 0.0):
        self.kind, self.label_smoothing = kind, label_smoothing
        self.error_metric = "mse" if kind == "regression" else "error"

    def loss(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean", smoothing: bool = True) -> torch.Tensor:
        ls = self.label_smoothing if smoothing else 0.0
        if self.kind == "classification":
            return F.cross_entropy(out, y, label_smoothing=ls, reduction=reduction)
        if self.kind == "tokens":
            return F.cross_entropy(
                out.flatten(0, 1), y.flatten(), ignore_index=IGNORE, label_smoothing=ls, reduction=reduction
            )
        return F.mse_loss(out.float().view_as(y), y, reduction=reduction)

    def errors(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | int]:
        """(sum of errors, number of scored items): wrong predictions, or squared errors."""
        if self.kind == "classification":
            return (out.argmax(1) != y).sum(), y.numel()
        if self.kind == "tokens":
            scored = y != IGNORE
            return ((out.argmax(-1) != y) & scored).sum(), scored.sum()
        return (out.float().view_as(y) - y).pow(2).sum(), y.numel()


def autocast(device: torch.device, precision: str):
    """bf16 autocast where asked (fast on GPUs and on CPUs with AMX or AVX512-BF16, emulated
    and slow on others); nothing for fp32. Training and probes alike compute under it."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    dataset: Dataset,
    task: Task,
    *,
    device: torch.device,
    precision: str,
    channels_last: bool,
    batch_size: int = 500,
) -> tuple[float, float]:
    """(mean loss, error) of ``model`` on ``split`` in eval mode, without label smoothing."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    err_sum = torch.zeros((), dtype=torch.float64, device=device)
    count_sum = 0
    try:
        batches = eval_batches(
            split, batch_size, mean=dataset.mean, std=dataset.std, device=device, channels_last=channels_last
        )
        for x, y in batches:
            with autocast(device, precision):
                out = model(x)
            out = out.float()
            loss_sum += task.loss(out, y, reduction="sum", smoothing=False)
            wrong, count = task.errors(out, y)
            err_sum += wrong
            count_sum += int(count)  # samples, scored positions or regression targets
    finally:
        model.train(was_training)
    if count_sum == 0:
        return float("nan"), float("nan")
    return float(loss_sum) / count_sum, float(err_sum) / count_sum
