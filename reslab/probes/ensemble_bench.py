"""Speed targets of the ensemble-view and landscape probes, for ``reslab bench``.

- Lesions: the baseline plus all single deletions with cached block inputs must cost at
  most 0.55x the naive way (one full forward per deletion plus the baseline). Measured in
  counted branch evaluations (exact: (n+1)/(2n)) and in wall-clock (fastest of repeats).
- Landscape: a 21x21 grid on a ResNet-20 (Fashion-MNIST shape, 28x28x1) with 2,000
  evaluation samples, target < 5 minutes. Every grid point costs the same (set the
  weights, evaluate 2,000 samples), so a few points are timed and the 441-point time is
  extrapolated from them; the detail line says how many points were measured.
Weights are random: the cost of a forward pass does not depend on training.
"""

from __future__ import annotations

import time

import torch

from ..benchmark import Measurement
from ..models import create_model
from .landscape import loss_plane
from .lesion import lesion_cost

LESION_TARGET = 0.55
LANDSCAPE_TARGET_S = 300.0


def _lesion(name: str, samples: int, repeats: int) -> list[Measurement]:
    model = create_model(name, in_channels=1, image_size=28)
    x = torch.randn(samples, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cost = lesion_cost(model, x, batch_size=samples, repeats=repeats)
    what = f"lesion: all single deletions, {name} ({cost['blocks']} blocks), {samples} images"
    detail = (
        f"{cost['cached_branch_evals']} vs {cost['naive_branch_evals']} branch evaluations; "
        f"{cost['cached_seconds']:.2f} s vs {cost['naive_seconds']:.2f} s (fastest of {repeats}), "
        f"{torch.get_num_threads()} threads"
    )
    ratios = (("counted cost", cost["count_ratio"]), ("wall-clock", cost["wall_ratio"]))
    return [
        Measurement(
            f"{what}: {kind} / naive", round(r, 3), "x naive", f"<= {LESION_TARGET}", r <= LESION_TARGET, detail
        )
        for kind, r in ratios
    ]


def _landscape(samples: int = 2000, steps: int = 21, measured_steps: int = 2) -> Measurement:
    model = create_model("resnet20", in_channels=1, image_size=28)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(samples, 1, 28, 28, generator=gen), torch.randint(10, (samples,), generator=gen)
    loss_plane(model, x[:50], y[:50], steps=1)  # warm-up: first-call allocations
    t = time.perf_counter()
    result = loss_plane(model, x, y, steps=measured_steps, batch_size=500)
    per_point = (time.perf_counter() - t) / result.loss.size
    total = per_point * steps * steps
    return Measurement(
        f"landscape: {steps}x{steps} grid, resnet20 (28x28x1), {samples} samples, fp32",
        round(total, 1),
        "s",
        f"< {LANDSCAPE_TARGET_S:.0f} s",
        total < LANDSCAPE_TARGET_S,
        f"extrapolated from {result.loss.size} measured points at {per_point:.2f} s each "
        f"({samples / per_point:.0f} images/s, {torch.get_num_threads()} threads)",
    )


def bench_ensemble() -> list[Measurement]:
    return [*_lesion("resnet20", 256, 3), *_lesion("resnet56", 128, 2), _landscape()]
