"""env.json: the software, hardware and code version behind a run.

Collected once per process (a git call costs milliseconds; a sweep of a hundred runs
should not pay it a hundred times). The same facts as the report's environment block.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding the reslab package (if it is one)."""
    root = Path(__file__).resolve().parents[2]
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is None or Path(top).resolve() != root:
        return {"git_commit": f"not a git checkout ({root})", "git_dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    return {
        "git_commit": _git(["rev-parse", "HEAD"], root) or "no commit yet",
        "git_dirty": None if status is None else bool(status),
    }


@functools.cache
def collect_env() -> dict[str, Any]:
    try:
        reslab_version = metadata.version("reslab")
    except metadata.PackageNotFoundError:
        reslab_version = "not installed"
    gpu = "none"
    if torch.cuda.is_available():
        gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return {
        "reslab": reslab_version,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        **git_state(),
    }
