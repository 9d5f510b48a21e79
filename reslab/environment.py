"""``collect_env()``: the software, hardware and code version behind a run or a report.

Versions, hardware and the exact commit (with a dirty flag) of the reslab checkout; it
goes into every run's env.json and into results.json. Every probe is best-effort: a
missing tool gives a value that says so, never an exception. Used by ``runs/`` and
``report/`` alike, so it lives at the bottom of the package and imports nothing of reslab.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, macOS sysctl), else the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"], Path.cwd())
        if out:
            return out
    return platform.processor() or platform.machine() or "unknown"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _run(cmd: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(root: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the reslab checkout, or why there is none.

    Only a repository whose top level is the directory holding the ``reslab`` package counts,
    so an installed copy inside some other repository does not report that repository's commit.
    """
    root = root or Path(__file__).resolve().parents[1]
    top = _run(["git", "rev-parse", "--show-toplevel"], root)
    if top is None or Path(top).resolve() != root.resolve():
        return {"git_commit": f"not a git checkout ({root})", "git_dirty": None}
    commit = _run(["git", "rev-parse", "HEAD"], root)
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], root)
    return {
        "git_commit": commit or "no commit yet",
        "git_dirty": None if status is None else bool(status),
    }


def _torch() -> dict[str, Any]:
    try:
        import torch  # here, so a missing torch is reported instead of failing the import
    except ImportError:
        return {"torch": "not installed", "gpu": "none"}
    info: dict[str, Any] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), **_cpu_kernels(torch)}
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["gpu"] = ", ".join(names)
        info["cuda"] = torch.version.cuda or torch.version.hip or "unknown"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        info["gpu"] = "Apple MPS"
    else:
        info["gpu"] = "none"
    return info


def _cpu_kernels(torch) -> dict[str, Any]:
    """What decides a CPU's bf16 speed: its bf16 instructions, and the level ATen and oneDNN run at."""
    try:
        bf16 = [
            name
            for name, has in (
                ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported()),
                ("AMX", torch.cpu._is_amx_tile_supported()),
            )
            if has
        ]
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # an older torch
        bf16, capability = [], "unknown"
    cap = onednn_isa_cap() or "not set"
    return {"cpu_bf16": ", ".join(bf16) or "none", "aten_cpu_capability": capability, "onednn_max_cpu_isa": cap}


def onednn_isa_cap() -> str | None:
    """The ISA cap oneDNN runs under (``ONEDNN_MAX_CPU_ISA``, or its old name ``DNNL_MAX_CPU_ISA``)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap else None


def idle_cores(window: float = 0.25) -> float | None:
    """Cores' worth of CPU time no process used over ``window`` seconds (Linux ``/proc/stat``), else None."""

    def times() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    try:
        total0, idle0 = times()
        time.sleep(window)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / (total1 - total0)


@functools.cache  # a git call per run of a sweep would add up; the facts do not change in a process
def collect_env() -> dict[str, Any]:
    """Versions, hardware and git state, as a flat JSON-ready dict (results.json's ``env``)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    env: dict[str, Any] = {
        "reslab": _version("reslab"),
        "python": platform.python_version(),
        **_torch(),
        "numpy": _version("numpy"),
        "matplotlib": _version("matplotlib"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "memory_gib": memory_gib(),
    }
    env.update(git_state())
    return env
