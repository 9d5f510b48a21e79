"""The usual CIFAR-ResNet training pipeline: the reference ``reslab bench`` compares ``train()`` with.

What a typical CIFAR ResNet script does (torchvision's ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip``, ``ToTensor``, ``Normalize`` in a ``Dataset``; a ``DataLoader``
with worker processes; fp32 in NCHW; ``torch.optim.SGD`` as constructed by default; the
loss and accuracy read with ``.item()`` every step for the progress line), written with
torch ops so that it needs no torchvision. It is used only to measure against: nothing in
reslab trains this way.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..data.base import Split


class PerSampleAugmented(TorchDataset):
    """One image at a time: to float in [0, 1], pad-and-crop, flip, normalize (the torchvision order)."""

    def __init__(self, split: Split, mean, std, crop: int = 4, flip: bool = True):
        self.x, self.y, self.crop, self.flip = split.x, split.y, crop, flip
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.x[i].float().div(255)
        if self.crop:
            p, (h, w) = self.crop, x.shape[-2:]
            x = F.pad(x, (p, p, p, p))
            top, left = (int(v) for v in torch.randint(2 * p + 1, (2,)))
            x = x[:, top : top + h, left : left + w]
        if self.flip and torch.rand(1).item() < 0.5:
            x = x.flip(-1)
        return (x - self.mean) / self.std, int(self.y[i])


class ReferencePipeline:
    """Trains ``model`` the usual way; ``train_steps(n)`` returns the images per second it ran at."""

    def __init__(
        self,
        model: nn.Module,
        train: Split,
        mean,
        std,
        *,
        batch_size: int = 128,
        workers: int = 2,
        lr: float = 0.1,
        weight_decay: float = 1e-4,
        total_steps: int | None = None,
        seed: int = 0,
    ):
        torch.manual_seed(seed)
        self.model = model.train()
        self.loader = DataLoader(
            PerSampleAugmented(train, mean, std),
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(seed),
        )
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, total_steps) if total_steps else None
        self.criterion = nn.CrossEntropyLoss()
        self.batches = iter(self.loader)
        self.loss_sum, self.correct, self.seen = 0.0, 0, 0

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(self.batches)
        except StopIteration:  # a new epoch
            self.batches = iter(self.loader)
            return next(self.batches)

    def train_steps(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            x, y = self._next()
            out = self.model(x)
            loss = self.criterion(out, y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            if self.schedule is not None:
                self.schedule.step()
            self.loss_sum += loss.item()  # the progress line's running loss and accuracy
            self.correct += out.argmax(1).eq(y).sum().item()
            self.seen += len(y)
        return steps * self.loader.batch_size / (time.perf_counter() - start)

    @torch.no_grad()
    def test_error(self, test: Split, mean, std, batch_size: int = 500) -> float:
        self.model.eval()
        m = torch.tensor(mean).view(1, -1, 1, 1)
        s = torch.tensor(std).view(1, -1, 1, 1)
        wrong = 0
        for lo in range(0, len(test), batch_size):
            x = (test.x[lo : lo + batch_size].float() / 255 - m) / s
            wrong += int((self.model(x).argmax(1) != test.y[lo : lo + batch_size]).sum())
        self.model.train()
        return wrong / len(test)

    def close(self) -> None:
        """End the persistent worker processes (they end with the loader's iterator)."""
        self.batches = None
        self.loader = None
