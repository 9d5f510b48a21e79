"""Speed targets of the probes layer, for ``reslab bench``.

Probes II (lesions, landscapes): ``ensemble_bench.py``. Probes I (gradient flow,
propagation, shattered gradients, identity fitting): ``signal_bench.py``.
"""

from __future__ import annotations

from ..benchmark import BenchContext, Measurement
from .ensemble_bench import bench_ensemble
from .signal_bench import bench_signal


def bench(ctx: BenchContext) -> list[Measurement]:
    return [*bench_ensemble(ctx), *bench_signal(ctx)]
