"""What a training run writes of itself: the checkpoint it resumes from exactly, and
result.json. A mixin of the loop's ``_Run``, kept apart because it only reads the run's state."""

from __future__ import annotations

import time
from typing import Any

import torch

from ..errors import ConfigError
from ..models import count_parameters
from . import distributed
from .checkpoint import CHECKPOINT, load_torch, rng_state, save_torch, set_rng_state


class RunRecords:
    """``_state``/``_save``/``_restore`` (the checkpoint) and ``_result`` (result.json) of a ``_Run``."""

    def _state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "config_hash": self.config.hash(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loader": self.loader.state_dict(),
            "warmup": self.warmup.state_dict(),
            "rng": rng_state(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "window": self.window.state_dict(),
            "totals": {
                "train_time": self.train_time,
                "samples": self.samples,
                "wall": self.wall_before + time.perf_counter() - self.t_start,
                "resumed": self.resumed,
            },
            "last_eval": self.last_eval,
            "shorter": self.shorter.state_dict() if self.shorter else None,
        }

    def _save(self) -> None:
        state = self._state()
        if self.ranks.active:  # each rank's own generators (dropout), so each resumes its own stream
            state["rng_ranks"] = distributed.gather(state["rng"], self.ranks)
        if self.ranks.writes:
            save_torch(self.run_dir / CHECKPOINT, state, durable=True)

    def _restore(self) -> int | None:
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return None
        state = load_torch(path, "cpu")
        if state.get("config_hash") != self.config.hash():
            raise ConfigError(f"{path} belongs to a different config; resume it with its own config.yaml")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.warmup.load_state_dict(state["warmup"])
        if len(state["callbacks"]) == len(self.callbacks):
            for cb, cb_state in zip(self.callbacks, state["callbacks"]):
                cb.load_state_dict(cb_state)
        self.window.load_state_dict(state["window"])
        totals = state["totals"]
        self.train_time, self.samples, self.wall_before = totals["train_time"], totals["samples"], totals["wall"]
        self.resumed = totals["resumed"] + 1
        self.last_eval = state["last_eval"]
        if self.shorter and state.get("shorter"):
            self.shorter.load_state_dict(state["shorter"])
        self.step = int(state["step"])
        rng = state["rng_ranks"][self.ranks.rank] if "rng_ranks" in state else state["rng"]
        set_rng_state(rng)  # last: nothing after this may draw random numbers before the loop
        return self.step

    def _result(self, ev: dict[str, Any], test_loss: float | None, test_error: float | None) -> dict[str, Any]:
        wall = self.wall_before + time.perf_counter() - self.t_start
        return {
            "status": self.status,
            "config_hash": self.config.hash(),
            "steps": self.step,
            "total_steps": self.total,
            "epochs": round(self.step / self.steps_per_epoch, 4),
            "diverged_step": self.diverged_step,
            "error_metric": self.task.error_metric,
            "train_error": ev.get("train_eval_error"),
            "train_loss": ev.get("train_eval_loss"),
            "train_eval_size": len(self.train_eval) if self.train_eval is not None else 0,
            "val_error": ev.get("val_error"),
            "val_loss": ev.get("val_loss"),
            "test_error": test_error,
            "test_loss": test_loss,
            "wall_time_s": round(wall, 3),
            "train_time_s": round(self.train_time, 3),
            "img_per_s": round(self.samples / self.train_time, 1) if self.train_time > 0 else None,
            "warmup_end_step": self.warmup.end,
            "half_schedule": self.shorter.result if self.shorter else None,
            "resumed": self.resumed,
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "threads": torch.get_num_threads(),
            "params": count_parameters(self.model),
            "model": {"name": self.config.model, "options": self.model_options},
            "data": self.ds.describe(),
        }
