"""What ``reslab bench`` reports: one measurement per speed or memory target.

Speed targets are checked here, never in timed tests. Each layer that has targets
provides ``bench() -> list[Measurement]`` in its own ``bench.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Measurement:
    name: str  # e.g. "shattered: depths 1-50 x 6 families x 20 seeds"
    value: float
    unit: str  # "s", "img/s", "x naive", ...
    target: str = ""  # human-readable, e.g. "< 60 s"
    passed: bool | None = None  # None when there is no target
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
