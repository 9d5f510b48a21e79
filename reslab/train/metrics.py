"""metrics.jsonl: one JSON object per line, appended as training goes, trimmed on resume.

Lines have a ``kind``: "train" (means over the batches since the previous line: loss,
train-mode batch error, plus lr, gradient norm and images/s), "eval" (validation and the
fixed training subset, in eval mode) or "diverged". On resume the file is cut back to the
checkpoint's step, so a resumed run's log has no duplicate and no missing step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import atomic_write_text, jsonable

METRICS = "metrics.jsonl"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a metrics file (a torn last line from a kill is skipped)."""
    out = []
    if not Path(path).exists():
        return out
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class MetricsLog:
    def __init__(self, path: Path, resume_step: int | None, tensorboard_dir: Path | None = None):
        self.path = Path(path)
        if resume_step is None:
            atomic_write_text(self.path, "")
        else:
            kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a")  # noqa: SIM115 (kept open for the run; closed in close())
        self._tb = _tensorboard_writer(tensorboard_dir, resume_step) if tensorboard_dir else None

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(jsonable(record), allow_nan=False) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(record["step"])
            prefix = record.get("kind", "train")
            for key, value in record.items():
                if key not in ("step", "kind") and isinstance(value, int | float) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _tensorboard_writer(folder: Path, resume_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "--tensorboard needs the tensorboard package: pip install 'reslab[tensorboard]' (or pip install tensorboard)"
        ) from None
    # purge_step drops events past the checkpoint when a run resumes, like metrics.jsonl
    return SummaryWriter(log_dir=str(folder), purge_step=resume_step)


def check_tensorboard() -> None:
    """Fail early (before any training) when --tensorboard cannot work."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--tensorboard needs the tensorboard package: pip install 'reslab[tensorboard]' (or pip install tensorboard)"
        ) from None


def plain_line(step: int, total: int, rec: dict[str, Any]) -> str:
    speed = f"{rec['img_per_s']:.0f} img/s" if rec.get("img_per_s") else ""
    return (
        f"step {step}/{total}  loss {rec['loss']:.4f}  train err {100 * rec['train_error']:.2f}%  "
        f"lr {rec['lr']:.4g}  {speed}"
    )


def summary_line(result: dict[str, Any]) -> str:
    def pct(v):
        if v is None:
            return "n/a"
        return f"{v:.4g}" if result["error_metric"] == "mse" else f"{100 * v:.2f}%"

    extra = f" at step {result['diverged_step']}" if result["diverged_step"] else ""
    return (
        f"{result['status']}{extra}: {result['steps']} steps, train {pct(result['train_error'])}, "
        f"val {pct(result['val_error'])}, test {pct(result['test_error'])}, "
        f"{result['img_per_s'] or 0:.0f} img/s, {result['wall_time_s']:.1f} s"
    )
