"""What ``reslab bench`` reports, and how it measures on a machine that other work shares.

- ``Measurement``: one speed or memory target, with the reference it is compared with;
- ``alternate``: time A and B in turns (A B A B ...) after a warm-up, so both see the same
  load, and take the median of the per-round ratios (a single unpaired timing on a shared
  machine is not evidence);
- ``PeakMeter``: the machine's compute peak per precision, the best of a large matrix
  multiply and a large convolution, sampled between the measured rounds;
- ``count_flops``: the FLOPs a call computes, counted from the model with
  ``torch.utils.flop_counter``'s formulas (matrix multiplies and convolutions, forward and
  backward).

Speed targets are checked by ``reslab bench``, never in timed tests. Each layer that has
targets provides ``bench(quick) -> list[Measurement]`` in its own ``bench.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


@dataclass
class Measurement:
    name: str  # e.g. "shattered: depths 1-50 x 6 families x 20 seeds"
    value: float
    unit: str  # "s", "img/s", "x naive", ...
    target: str = ""  # human-readable, e.g. "< 60 s"
    passed: bool | None = None  # None when there is no target
    detail: str = ""
    reference: str = ""  # what the value is compared with, e.g. "usual pipeline 1,015 img/s"
    ratio: float | None = None  # value against the reference (median of paired rounds where paired)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Paired:
    """What A and B returned in each round (rates or seconds, as the callables measure)."""

    a: list[float]
    b: list[float]

    @property
    def ratio(self) -> float:
        """Median over rounds of a / b: each round's two values saw the same load."""
        return statistics.median(x / y for x, y in zip(self.a, self.b))

    @property
    def median_a(self) -> float:
        return statistics.median(self.a)

    @property
    def median_b(self) -> float:
        return statistics.median(self.b)


def alternate(a: Callable[[], float], b: Callable[[], float], rounds: int = 3, warmup: int = 1) -> Paired:
    """Call ``a`` and ``b`` in turns, ``warmup`` untimed rounds first; each returns what it measured."""
    for _ in range(warmup):
        a(), b()
    out = Paired([], [])
    for i in range(rounds):
        first, second = (a, b) if i % 2 == 0 else (b, a)  # neither always runs right after the other
        one, two = first(), second()
        out.a.append(one if first is a else two)
        out.b.append(two if first is a else one)
    return out


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class FlopCount(TorchDispatchMode):
    """FLOPs and calls of the operators ``torch.utils.flop_counter`` has a formula for (matrix
    multiplies, convolutions, attention; forward and backward), 2 per multiply-add.

    Unlike ``FlopCounterMode`` it tracks no modules, so it also counts inside
    ``torch.autograd.grad`` (which that mode's module hooks refuse).
    """

    def __init__(self):
        super().__init__()
        self.flops, self.calls = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        formula = flop_registry.get(func._overloadpacket)
        if formula is None:  # e.g. conv2d reaches here whole under inference_mode: count its parts
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        if formula is not None:
            self.flops += int(formula(*args, **kwargs, out_val=out))
            self.calls += 1
        return out


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix multiplies and convolutions ``fn`` runs."""
    with FlopCount() as counter:
        fn()
    return counter.flops


PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _matmul_probe(dtype: torch.dtype, device: torch.device) -> Callable[[], float]:
    n = 2048
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    return lambda: 2 * n**3 / _best_seconds(lambda: a @ b, device)


def _conv_probe(dtype: torch.dtype, device: torch.device) -> Callable[[], float]:
    """A 3x3 convolution wide enough to be compute-bound, in the layout that suits it (channels-last)."""
    n, c, side = 64, 128, 32
    x = torch.randn(n, c, side, side, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    return lambda: 2 * n * c * c * 9 * side * side / _best_seconds(lambda: F.conv2d(x, w, padding=1), device)


def _best_seconds(fn: Callable[[], object], device: torch.device, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


@dataclass
class PeakMeter:
    """FLOP/s peak per precision, sampled now and then; ``peak`` is the median of the samples.

    A sample is the better of a 2048^2 matrix multiply and a 128-channel 3x3 convolution.
    Sampled between the rounds of the workloads it is compared with, the peak saw the same
    load they did (the best sample alone would be from the quietest moment).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    samples: dict[str, list[float]] = field(default_factory=dict)

    def sample(self) -> None:
        for precision, dtype in PRECISION_DTYPES.items():
            probes = (_matmul_probe(dtype, self.device), _conv_probe(dtype, self.device))
            probes[0](), probes[1]()  # first calls pick kernels and allocate
            self.samples.setdefault(precision, []).append(max(p() for p in probes))

    def peak(self, precision: str) -> float:
        if not self.samples.get(precision):
            self.sample()
        return statistics.median(self.samples[precision])

    def best_precision(self) -> str:
        return max(PRECISION_DTYPES, key=self.peak)

    def describe(self) -> str:
        parts = [f"{p} {self.peak(p) / 1e9:.0f} GFLOP/s" for p in PRECISION_DTYPES]
        n = len(self.samples["fp32"])
        return f"peak {', '.join(parts)} (median of {n} samples: best of matmul 2048^2 and conv 3x3 128ch)"


def conditions() -> str:
    """Threads and load: every timing here is wall-clock on CPUs that may be shared."""
    threads = torch.get_num_threads()
    return f"{threads} thread{'' if threads == 1 else 's'}, load average {os.getloadavg()[0]:.1f}"


@dataclass
class BenchContext:
    """What every layer's ``bench`` shares: how long to measure, and one peak for the whole run."""

    quick: bool = False
    peak: PeakMeter = field(default_factory=PeakMeter)
    progress: bool = False  # a line on stderr as each measurement starts

    def rounds(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def say(self, what: str) -> None:
        if self.progress:
            print(f"  {what} ...", file=sys.stderr, flush=True)
