"""Reading ``DIR/results.json``: every way it can be missing or wrong is one clear ``ReportError``."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReslabError
from ..studies.results import FigureSpec, Series, StudyResult

RESULTS_FILE = "results.json"


class ReportError(ReslabError):
    """No report can be made: the results file is missing, unreadable or not in the schema."""


@dataclass
class Results:
    """The contents of results.json, checked."""

    env: dict[str, Any]
    scale: str
    started: str
    elapsed_s: float | None
    studies: list[StudyResult]
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level keys, shown as they are


def load_results(directory: str | Path) -> Results:
    """Parse ``directory/results.json`` into ``Results``; raise ``ReportError`` saying what is wrong."""
    directory = Path(directory)
    path = directory / RESULTS_FILE
    if not directory.is_dir():
        raise ReportError(f"{directory} is not a directory (expected one holding {RESULTS_FILE})")
    if not path.is_file():
        raise ReportError(f"{path} not found; run `reslab reproduce` or `reslab study ID` to make it")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} must hold a JSON object, found {type(data).__name__}")
    raw_studies = data.get("studies")
    if not isinstance(raw_studies, list):
        raise ReportError(f"{path} has no 'studies' list")
    studies = [_study(path, i, s) for i, s in enumerate(raw_studies)]
    env = data.get("env", {})
    if not isinstance(env, dict):
        raise ReportError(f"{path}: 'env' must be an object, found {type(env).__name__}")
    elapsed = data.get("elapsed_s")
    known = {"env", "scale", "started", "elapsed_s", "studies"}
    return Results(
        env=env,
        scale=str(data.get("scale", "")),
        started=str(data.get("started", "")),
        elapsed_s=float(elapsed) if isinstance(elapsed, int | float) and math.isfinite(elapsed) else None,
        studies=studies,
        extra={k: v for k, v in data.items() if k not in known},
    )


def _study(path: Path, index: int, raw: Any) -> StudyResult:
    where = f"{path}: study #{index + 1}"
    if not isinstance(raw, dict):
        raise ReportError(f"{where} must be an object, found {type(raw).__name__}")
    if isinstance(raw.get("id"), str):
        where += f" ({raw['id']!r})"
    try:
        study = StudyResult.from_dict(raw)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{where} does not match the StudyResult schema: {exc}") from None
    _check_types(study, where)
    for n, fig in enumerate(study.figures, 1):
        _check_types(fig, f"{where}: figure {n}")
        for s in fig.series:
            _check_types(s, f"{where}: figure {n} ({fig.title!r}), series")
    return study


def _check_types(obj: StudyResult | FigureSpec | Series, where: str) -> None:
    """Each field holds the JSON type its annotation names: the renderers rely on it. (Numbers
    inside series and matrices are checked per figure: a bad one costs that figure only.)"""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _fits(value, hints[f.name]):
            raise ReportError(
                f"{where}: '{f.name}' must be {_json_type(hints[f.name])}, found {type(value).__name__} {value!r:.40}"
            )


def _fits(value: Any, kind: Any) -> bool:
    if kind is Any:
        return True
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return any(_fits(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if typing.get_origin(kind) is list:
        strings = typing.get_args(kind) == (str,)
        return isinstance(value, list) and (not strings or all(isinstance(v, str) for v in value))
    if typing.get_origin(kind) is dict:
        return isinstance(value, dict)
    if kind in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


def _json_type(kind: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_json_type(k) for k in typing.get_args(kind))
    if typing.get_origin(kind) is list:
        return "a list of strings" if typing.get_args(kind) == (str,) else "a list"
    if typing.get_origin(kind) is dict:
        return "an object"
    return names.get(kind, "an object")
