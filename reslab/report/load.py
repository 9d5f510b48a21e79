"""Reading ``DIR/results.json``: every way it can be missing or wrong is one clear ``ReportError``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReslabError
from ..studies.results import StudyResult

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
    for name, kind in (("numbers", dict), ("anchors", dict), ("setup", dict), ("evidence", list)):
        if not isinstance(getattr(study, name), kind):
            raise ReportError(f"{where}: '{name}' must be a JSON {'object' if kind is dict else 'list'}")
    for fig in study.figures:
        for s in fig.series:
            if not isinstance(s.y, list) or not isinstance(s.x, list):
                raise ReportError(f"{where}: figure {fig.title!r} series {s.label!r} needs x and y lists")
    return study
