"""A timm-style model registry: ``create_model(name, **overrides)``, ``list_models(pattern)``.

An entry is a builder plus the arguments that define the named model; overrides replace
those arguments (e.g. ``create_model("resnet56", in_channels=1, image_size=28)``).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ConfigError, UnknownModelError
from .weights import load_weights


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    args: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    description: str = ""

    def options(self) -> list[str]:
        """The keyword arguments this model accepts as overrides."""
        return [p.name for p in inspect.signature(self.builder).parameters.values()]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, builder: Callable[..., nn.Module], family: str, description: str, **args: Any) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = ModelEntry(name, builder, args, family, description)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `reslab models` for the list"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def create_model(name: str, weights: str | Path | None = None, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``, with any builder argument overridden.

    ``weights``: a file to load (reslab's ``model.pt`` or another codebase's state_dict of
    the same architecture; see ``reslab.models.weights``).
    """
    entry = get_entry(name)
    unknown = sorted(set(overrides) - set(entry.options()))
    if unknown:
        raise ConfigError(f"{name} does not take {', '.join(unknown)}; it takes: {', '.join(entry.options())}")
    try:
        model = entry.builder(**{**entry.args, **overrides})
    except TypeError as exc:  # a wrongly typed override, e.g. a string depth
        raise ConfigError(f"bad option for {name}: {exc}") from None
    model.model_name = name
    if weights is not None:
        load_weights(model, weights)
    return model


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, in registration order."""
    return [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]


def model_entries(pattern: str = "*") -> list[ModelEntry]:
    return [_REGISTRY[n] for n in list_models(pattern)]
