"""The training metrics between two log lines, and He2015's error-watching warm-up.

``StepWindow`` sums loss, errors and samples over the steps since the last log line. Where
the loop syncs with the host every step (CPUs), the step's numbers are added on the host;
elsewhere they are summed on the device and read only at log, evaluation and checkpoint
steps (``flush``), which also reports the first step whose loss was non-finite.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

_EMPTY = {"loss": 0.0, "wrong": 0.0, "count": 0, "samples": 0, "time": 0.0, "batches": 0}


class StepWindow:
    def __init__(self, device: torch.device):
        self.sums: dict[str, Any] = dict(_EMPTY)
        self._device_sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, wrong, count, first bad step
        self._device_sums[3] = -1

    def batch_numbers(
        self, loss: torch.Tensor, wrong: torch.Tensor, count: torch.Tensor | int, step: int, sync: bool
    ) -> tuple[float | None, float | None, float]:
        """One batch's loss, wrong predictions and scored count (an int, or a tensor of token positions).

        With ``sync`` they are read in one host transfer (the caller checks the loss). Without,
        they are summed on the device, the first non-finite loss's step is remembered for
        ``flush``, and loss and wrong come back None (the count only when it is a known int).
        """
        on_device = isinstance(count, torch.Tensor)
        zero = wrong.new_zeros((), dtype=torch.float64)
        values = torch.stack([loss.detach().double(), wrong.double(), count.double() if on_device else zero])
        if sync:
            loss_value, wrong_value, count_value = values.tolist()
            return loss_value, wrong_value, count_value if on_device else count
        acc = self._device_sums
        acc[:3] += values
        acc[3] = torch.where(torch.isfinite(values[0]) | (acc[3] >= 0), acc[3], float(step + 1))
        return None, None, 0 if on_device else count

    def add_step(self, loss: float | None, wrong: float | None, count: int, samples: int) -> None:
        """Count one step; ``loss`` and ``wrong`` are None when they were added on the device."""
        s = self.sums
        if loss is not None:
            s["loss"] += loss
            s["wrong"] += wrong
        s["count"] += count
        s["batches"] += 1
        s["samples"] += samples

    def flush(self, seconds: float = 0.0) -> int:
        """Move the device-side sums (and ``seconds`` of training time) into the window.

        Returns the first step whose loss was non-finite, or -1.
        """
        self.sums["time"] += seconds
        loss, wrong, count, bad = self._device_sums.tolist()
        if loss or wrong or count or bad >= 0:
            self.sums["loss"] += loss
            self.sums["wrong"] += wrong
            self.sums["count"] += count
            self._device_sums.zero_()
            self._device_sums[3] = -1
        return int(bad)

    def take(self) -> dict[str, Any]:
        """The window's sums, and a fresh window for the next log line."""
        sums, self.sums = self.sums, dict(_EMPTY)
        return sums

    def state_dict(self) -> dict[str, Any]:
        return dict(self.sums)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = dict(state)


class ErrorWarmup:
    """He2015 Sec. 4.2: stay at the warm-up rate until the mean training error of the last
    ``window`` batches falls below ``threshold``; ``end`` is the step where it did."""

    def __init__(self, active: bool, window: int, threshold: float):
        self.active, self.end, self.threshold = active, None, threshold
        self.recent: deque[float] = deque(maxlen=window)

    def observe(self, error: float, step: int) -> None:
        self.recent.append(error)
        if len(self.recent) == self.recent.maxlen and sum(self.recent) / len(self.recent) < self.threshold:
            self.active, self.end = False, step

    def state_dict(self) -> dict[str, Any]:
        return {"warming": self.active, "end": self.end, "recent": list(self.recent)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active, self.end = state["warming"], state["end"]
        self.recent.clear()
        self.recent.extend(state["recent"])
