"""The catalogue: every study, in the order of claims.md."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Study

# claim id -> module in reslab/studies/
MODULES = {
    "vanishing": "vanishing",
    "degradation": "degradation",
    "identity": "identity",
    "propagation": "propagation",
    "shortcut-variants": "shortcut_variants",
    "activation-variants": "activation_variants",
    "lesion": "lesion",
    "paths": "paths",
    "shattered": "shattered",
}


def study_ids() -> list[str]:
    return list(MODULES)


def get_study(study_id: str) -> Study:
    study_id = study_id.replace("_", "-")
    if study_id not in MODULES:
        raise ConfigError(f"unknown study {study_id!r}; studies: {', '.join(MODULES)}")
    return importlib.import_module(f"reslab.studies.{MODULES[study_id]}").STUDY


def all_studies() -> list[Study]:
    return [get_study(i) for i in MODULES]
