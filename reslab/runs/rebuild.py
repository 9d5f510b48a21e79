"""Index rows read back from run directories, for rebuilding a missing or damaged index.

A run directory holds all the index knows: ``config.yaml`` (with the hash the run was
stored under: it is kept, not recomputed, so a run whose data is elsewhere now is still
found under its own hash) and, once the run ended, ``result.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from ..errors import ReslabError
from ..train import TERMINAL, TrainConfig, read_result

RESULT_COLUMNS = ("train_error", "val_error", "test_error", "steps", "wall_time_s")


def result_columns(result: dict[str, Any]) -> dict[str, Any]:
    """The index columns a result fills (the whole result is kept too, for listing without reading files)."""
    return {"status": result["status"], "result": result, **{k: result.get(k) for k in RESULT_COLUMNS}}


def read_config(run_dir: Path) -> tuple[TrainConfig, str | None] | None:
    """``run_dir``'s config and the hash it was stored under, or None if it holds no readable config."""
    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text())
        config = TrainConfig.from_dict(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ReslabError, TypeError, AttributeError):
        return None
    recorded = data.get("hash")
    return config, recorded if isinstance(recorded, str) else None


def safe_result(run_dir: Path) -> dict[str, Any] | None:
    """result.json's content, or None when it is missing, torn or not a JSON object."""
    try:
        result = read_result(run_dir)
    except (OSError, UnicodeDecodeError):
        return None
    return result if isinstance(result, dict) else None


def row_from_dir(run_dir: Path, stored_dir: str) -> dict[str, Any] | None:
    """The index row for ``run_dir`` (named ``stored_dir`` in the index), or None if it is no run."""
    if run_dir.is_symlink() or not run_dir.is_dir():
        return None
    found = read_config(run_dir)
    if found is None:
        return None
    config, h = found
    if h is None:
        try:
            h = config.hash()
        except ReslabError:  # its data is not here to name it; reindex again where it is
            return None
    result = safe_result(run_dir)
    row: dict[str, Any] = {
        "hash": h,
        "id": run_dir.name,
        "dir": stored_dir,
        "model": config.model,
        "data": config.data,
        "seed": config.seed,
        "status": "running",
        "created": _mtime(run_dir / "env.json", run_dir / "config.yaml"),
        "updated": time.time(),
        "config": config.to_dict(),
    }
    if result is not None and result.get("config_hash") == h:
        if result.get("status") in TERMINAL:
            row.update(result_columns(result))
        elif result.get("status") == "stopped":
            row["status"] = "stopped"
    return row  # "running" without a result: shown as interrupted unless its lock is held


def scan(runs_dir: Path) -> list[dict[str, Any]]:
    """A row per run directory in ``runs_dir`` (``dir`` as ``runs/<name>``); one per hash,
    a finished copy preferred when a directory was duplicated."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        row = row_from_dir(path, f"{runs_dir.name}/{path.name}")
        if row is not None and (row["hash"] not in rows or rows[row["hash"]]["status"] not in TERMINAL):
            rows[row["hash"]] = row
    return list(rows.values())


def _mtime(*paths: Path) -> float:
    for path in paths:
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return time.time()
