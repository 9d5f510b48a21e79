"""The catalogue: every study, found by itself and placed by its ``order``.

Each module of ``reslab/studies`` that defines ``STUDY`` is one; adding a study is adding
its module (nothing to register elsewhere).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..errors import ConfigError
from .base import Study


@functools.cache
def _studies() -> dict[str, Study]:
    package = importlib.import_module(__package__)
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        study = getattr(importlib.import_module(f"{__package__}.{info.name}"), "STUDY", None)
        if isinstance(study, Study):
            found.append(study)
    found.sort(key=lambda st: st.order)
    return {st.id: st for st in found}


def study_ids() -> list[str]:
    return list(_studies())


def get_study(study_id: str) -> Study:
    studies = _studies()
    study_id = study_id.replace("_", "-")
    if study_id not in studies:
        raise ConfigError(f"unknown study {study_id!r}; studies: {', '.join(studies)}")
    return studies[study_id]


def all_studies() -> list[Study]:
    return list(_studies().values())
