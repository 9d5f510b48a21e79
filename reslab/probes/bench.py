"""Speed targets of the probes layer, for ``reslab bench``.

Created by the Probes II work (lesions, landscapes: ``ensemble_bench.py``); the Probes I
measurements (gradient flow, propagation, shattered gradients) are to be appended to the
list below by their author.
"""

from __future__ import annotations

from ..benchmark import Measurement
from .ensemble_bench import bench_ensemble


def bench() -> list[Measurement]:
    return [*bench_ensemble()]
