"""``train(config, run_dir)``: the one training loop, top to bottom.

Per step: next batch, forward under autocast, loss, one host sync (loss and batch error
together: a non-finite loss stops the run *before* its gradients touch the weights),
backward, optimizer step. Every ``log_every`` steps a metrics line (with the gradient
norm, the only extra work); every epoch (or ``eval_every`` steps) a validation in eval
mode; every ``checkpoint_every`` steps and at the end an atomic checkpoint.

How a run is assembled (device, precision, model, augmentation, optimizer) is in
``setup.py``; the metrics summed between log lines and He2015's error-watching warm-up
are in ``window.py``; checkpoint I/O is in ``checkpoint.py``, what a checkpoint and
result.json hold of a run in ``records.py``; the run directory's other
files are in ``rundir.py``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data import BatchLoader, Dataset, load_dataset
from ..errors import ConfigError
from ..files import clean_temporaries, jsonable, write_json
from . import distributed
from .callbacks import Callback, TrainContext
from .checkpoint import save_torch
from .config import TrainConfig
from .hardware import compile_mode, resolve_precision, use_channels_last
from .metrics import METRICS, MetricsLog, check_tensorboard, plain_line, summary_line
from .recipe import lr_at
from .records import RunRecords
from .rundir import MODEL, RESULT, TERMINAL, read_result, write_config
from .setup import (
    InterruptFlag,
    augmentation,
    build_model,
    make_optimizer,
    resolve_device,
    run_environment,
    total_grad_norm,
)
from .shorter import ShorterSchedule
from .task import Task, autocast, evaluate
from .window import ErrorWarmup, StepWindow

SYNC_EACH_STEP: bool | None = None  # None: on CPUs only (see _Run._begin); tests set it to check both paths


def train(
    config: TrainConfig,
    run_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    resume: bool = True,
    progress: bool = False,
    tensorboard: bool = False,
    dataset: Dataset | None = None,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` and return the result (also written to result.json).

    With ``resume`` (default), a run directory that holds a finished result returns it
    without training, and one that holds a checkpoint continues from it exactly. A
    non-finite loss ends the run with status "diverged" (no exception). ``dataset`` may
    pass data already loaded (it must be what ``config`` describes). Ctrl-C writes a
    checkpoint and a "stopped" result, then re-raises.
    """
    run_dir = Path(run_dir)
    writes = distributed.current().writes  # under torchrun, rank 0 alone writes the run directory
    if writes:
        run_dir.mkdir(parents=True, exist_ok=True)
        clean_temporaries(run_dir)
    if resume:
        done = read_result(run_dir)
        if done is not None and done.get("status") in TERMINAL and done.get("config_hash") == config.hash():
            return done
    if tensorboard:
        check_tensorboard()
    if writes:
        write_config(run_dir, config)
    with run_environment(config):
        return _Run(config, run_dir, list(callbacks), resume, progress, tensorboard, dataset).run()


class _Run(RunRecords):
    """One training run: its state, and the loop's steps as methods; ``run()`` is the loop
    (its checkpoint and result.json are assembled in ``records.py``)."""

    def __init__(self, config, run_dir, callbacks, resume, progress, tensorboard, dataset):
        self.config, self.run_dir, self.callbacks = config, run_dir, callbacks
        self.t_start = time.perf_counter()
        r = self.recipe = config.recipe
        self.device = resolve_device(config.device)
        self.ranks = distributed.current()
        distributed.check(config.ranks, config.sync_bn, self.device, self.ranks)
        if dataset is None:
            dataset = load_dataset(config.data, config.data_dir, **config.data_options)
        self.ds = dataset
        self.task = Task(dataset.task, r.label_smoothing)
        if r.warmup == "he2015" and dataset.task == "regression":
            raise ConfigError("the he2015 warm-up watches the training error; it needs a classification task")
        torch.manual_seed(config.seed)
        self.model, self.model_options = build_model(config, dataset)
        distributed.seed_rank(config.seed, self.ranks)
        self.model.to(self.device)
        self.channels_last, self.precision = self._fastest_layout_and_precision()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.optimizer = make_optimizer(self.model, config, self.device)
        self.net = distributed.wrap(self.model, self.ranks, self.device, config.sync_bn)  # what a step calls
        self.loader = BatchLoader(
            dataset.train,
            r.batch_size,
            seed=config.seed,
            augment=augmentation(config, dataset),
            mean=dataset.mean,
            std=dataset.std,
            device=self.device,
            channels_last=self.channels_last,
            shard=(self.ranks.rank, self.ranks.world),
        )
        self.steps_per_epoch = self.loader.steps_per_epoch
        self.total = r.total_steps(self.steps_per_epoch)
        self.net = self._compiled_where_it_pays(self.net)
        k = min(config.eval_train_size, len(dataset.train))
        pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(0))[:k]
        self.train_eval = dataset.train.take(pick.sort().values) if k else None
        self.step = 0
        self.shorter = ShorterSchedule.of(r, self.total) if config.convergence_check else None
        self.warmup = ErrorWarmup(r.warmup == "he2015", r.warmup_window, r.warmup_error)
        self.window = StepWindow(self.device)
        self.train_time, self.samples, self.wall_before, self.resumed = 0.0, 0, 0.0, 0
        self.last_eval: dict[str, Any] = {}
        # what callbacks see: the live model and optimizer, the step, and their "stop" request
        self.training = TrainContext(self.model, self.optimizer, run_dir, extra={"config": config, "dataset": dataset})
        resume_step = self._restore() if resume else None
        tb_dir = run_dir / "tensorboard" if tensorboard else None
        self.log = MetricsLog(run_dir / METRICS, resume_step, tb_dir) if self.ranks.writes else distributed.Silent()
        self.progress = progress

    def _fastest_layout_and_precision(self) -> tuple[bool, str]:
        """Channels-last and bf16 (for ``auto``) where they measured faster for this model (``hardware.py``)."""
        r, ds = self.recipe, self.ds
        channels_last = bool(r.channels_last and ds.is_image and use_channels_last(self.model, ds.shape))
        example = ds.train.x[:1].to(self.device)
        example = example.float() if example.dtype == torch.uint8 else example
        return channels_last, resolve_precision(r.precision, self.device, self.model, example, r.batch_size)

    def _compiled_where_it_pays(self, net: nn.Module) -> nn.Module:
        """What the training step calls, compiled where that pays (``hardware.compile_mode``);
        evaluation and checkpoints use the model itself, which shares its weights."""
        mode = compile_mode(self.config.compile, self.device, self.total, self.config.deterministic)
        return torch.compile(net, mode=mode) if mode else net

    # --- the loop ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Step until the last step, a non-finite loss or a request to stop; then the result."""
        self._begin()
        with self.interrupt:
            self.clock = time.perf_counter()
            while self.step < self.total:
                if not self._branch_shorter_schedule_if_due():
                    break
                if not self._train_step():  # its loss, read on the host, was non-finite
                    break
                if not self._log_if_due():  # a loss summed on the device was non-finite
                    break
                if not self._evaluate_checkpoint_or_stop_if_due():
                    break
            if self.status == "finished":  # the loop ran to the last step
                self.window.flush(time.perf_counter() - self.clock)
        return self._end()

    def _begin(self) -> None:
        """The progress bar, the first learning rate, ``on_start``, and how often the host syncs."""
        cfg = self.config
        self.training.step, self.training.epoch = self.step, self.step // self.steps_per_epoch
        self.bar = tqdm(
            total=self.total,
            initial=self.step,
            disable=None if self.progress else True,
            desc=f"{cfg.model} on {cfg.data}",
            unit="step",
            file=sys.stdout,
            dynamic_ncols=True,
        )
        self.plain = self.progress and self.bar.disable  # plain lines instead of a bar (not a terminal)
        self.plain_every = max(cfg.log_every, self.total // 20)
        self.backward_hooks = [cb for cb in self.callbacks if cb.every]
        self.status, self.diverged_step = "finished", None
        self.lr = lr_at(self.recipe, self.step, self.total, self.warmup.active)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        for cb in self.callbacks:
            cb.on_start(self.training)
        # On a CPU the per-step host sync is free, so every step's loss is checked before its
        # gradients touch the weights. On a GPU it would stall the queue: loss and errors are
        # summed on the device and read at log steps (and whenever a callback or He2015's
        # warm-up needs each step's numbers); the step where the loss first became
        # non-finite is still recorded exactly, but later updates have reached the weights.
        self.sync_each_step = self.device.type == "cpu" if SYNC_EACH_STEP is None else SYNC_EACH_STEP
        self.interrupt = InterruptFlag()

    def _branch_shorter_schedule_if_due(self) -> bool:
        """The convergence check, where the schedule half as long parts from this one
        (``shorter.py``); False if the run diverged before it."""
        if self.shorter is None or not self.shorter.due(self.step):
            return True
        if not self._read_device_sums():
            return False
        self.shorter.train(self)
        self.log.write({"kind": "half_schedule", **self.shorter.result})
        self.clock = time.perf_counter()  # training time leaves out the branch
        return True

    def _train_step(self) -> bool:
        """One optimizer step; False (status "diverged") when its loss, read on the host, is
        non-finite: the run then stops before that step's gradients touch the weights."""
        step = self.step
        x, y = self.loader.next()
        self._set_lr(lr_at(self.recipe, step, self.total, self.warmup.active))
        with autocast(self.device, self.precision):
            out = self.net(x)
            loss = self.task.loss(out, y)
        wrong, count = self.task.errors(out.detach(), y)
        seen, wrong, count = distributed.batch_totals(loss, wrong, count, self.ranks)  # the global batch's
        per_step = self.sync_each_step or self.warmup.active or bool(self.callbacks)
        loss_value, wrong_value, count_value = self.window.batch_numbers(seen, wrong, count, step, per_step)
        if per_step and not math.isfinite(loss_value):
            self._diverge(step + 1)
            return False
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.training.step = step
        for cb in self.backward_hooks:
            if step % cb.every == 0:
                cb.on_backward(self.training, loss_value)
        self.grad_norm = self._clip_or_measure_gradients(self._log_due(step + 1))
        self.optimizer.step()
        self._count_step(loss_value, wrong_value, count_value, len(y) * self.ranks.world)
        return True

    def _set_lr(self, lr: float) -> None:
        if lr != self.lr:
            self.lr = lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def _clip_or_measure_gradients(self, log_now: bool) -> float | None:
        """The gradient norm: clipped to ``grad_clip`` when set, else measured for a log line only."""
        if self.recipe.grad_clip is not None:
            return float(nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip))
        return total_grad_norm(self.model) if log_now else None

    def _count_step(self, loss: float | None, wrong: float | None, count: float, samples: int) -> None:
        """A step is taken: the window, He2015's warm-up and the callbacks' ``on_step`` learn of it."""
        self.step += 1
        self.training.step, self.training.epoch = self.step, self.step // self.steps_per_epoch
        self.window.add_step(loss, wrong, count, samples)
        if self.warmup.active:
            self.warmup.observe(wrong / max(count, 1), self.step)
        if self.callbacks:
            metrics = {"step": self.step, "loss": loss, "train_error": wrong / max(count, 1), "lr": self.lr}
            for cb in self.callbacks:
                cb.on_step(self.training, metrics)

    def _log_due(self, steps_taken: int) -> bool:
        return steps_taken % self.config.log_every == 0 or steps_taken == self.total

    def _log_if_due(self) -> bool:
        """A metrics line every ``log_every`` steps and at the last; False if the run diverged."""
        if not self._log_due(self.step):
            return True
        if not self._read_device_sums():
            return False
        self._log_train()
        self.clock = time.perf_counter()
        self._show_progress()
        return True

    def _evaluate_checkpoint_or_stop_if_due(self) -> bool:
        """Validation, checkpoint and a requested stop, at a step boundary where any is due.

        False when the run ends here: it diverged, or a callback or Ctrl-C asked it to stop
        (status "stopped", with a checkpoint to resume from).
        """
        cfg = self.config
        evaluate_now = self.step % (cfg.eval_every or self.steps_per_epoch) == 0 and self.step < self.total
        checkpoint_now = bool(cfg.checkpoint_every) and self.step % cfg.checkpoint_every == 0
        stop = self._stop_requested()
        if not (evaluate_now or checkpoint_now or stop):
            return True
        if not self._read_device_sums():
            return False
        if evaluate_now:
            self._evaluate_and_log()
        if checkpoint_now or stop:
            self._save()  # at a step boundary: model, optimizer and loader agree
        self.clock = time.perf_counter()  # training time leaves out validation and checkpoints
        if stop:
            self.status = "stopped"
        return not stop

    def _stop_requested(self) -> bool:
        """A callback or Ctrl-C asks to stop. Across ranks, every rank stops at the same step:
        the first step with a metrics line after any rank asked."""
        asked = bool(self.training.extra.get("stop") or self.interrupt.flag) and self.step < self.total
        if not self.ranks.active:
            return asked
        due = self.step < self.total and self._log_due(self.step)  # the same steps on every rank
        return due and distributed.agree(asked, self.ranks, self.device)

    def _read_device_sums(self) -> bool:
        """Move what the device summed into the window (one host sync), with the training time
        since ``clock``; False (status "diverged") if a loss among it was non-finite."""
        bad = self.window.flush(time.perf_counter() - self.clock)
        if bad >= 0:
            self._diverge(bad)
            return False
        return True

    def _diverge(self, step: int) -> None:
        self.status, self.diverged_step = "diverged", step

    def _end(self) -> dict[str, Any]:
        """After the loop: the bar, a "diverged" line, the result; a Ctrl-C is raised again."""
        if self.status == "diverged" and not self.sync_each_step:
            self.step = min(self.step, self.diverged_step - 1)  # report the steps taken before the loss broke
        self.bar.update(self.step - self.bar.n)
        self.bar.close()
        if self.status == "diverged":
            self.log.write({"kind": "diverged", "step": self.diverged_step, "loss": None, "lr": self.lr})
        result = self._finish()
        self.log.close()
        distributed.barrier(self.ranks)  # no rank leaves (ending torchrun's job) before rank 0 has written
        if self.plain or not self.bar.disable:
            print(summary_line(result), flush=True)
        if self.interrupt.flag:
            raise KeyboardInterrupt
        return result

    # --- logging and evaluation ------------------------------------------------------------
    def _log_train(self) -> None:
        w = self.window.take()
        self.train_time += w["time"]
        self.samples += w["samples"]
        rec = {
            "kind": "train",
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            "loss": w["loss"] / max(w["batches"], 1),
            "train_error": w["wrong"] / max(w["count"], 1),
            "lr": self.lr,
            "grad_norm": self.grad_norm,
            "img_per_s": w["samples"] / w["time"] if w["time"] > 0 else None,
            "time": round(self.wall_before + time.perf_counter() - self.t_start, 3),
        }
        self.last_train = rec
        self.log.write(rec)

    def _show_progress(self) -> None:
        """The bar's position and postfix; on a non-terminal, a plain line now and then."""
        self.bar.update(self.step - self.bar.n)
        last = self.last_train
        if not self.bar.disable:
            self.bar.set_postfix(loss=f"{last['loss']:.3f}", err=f"{100 * last['train_error']:.1f}%", refresh=False)
        log_every = self.config.log_every
        if self.plain and (self.step % self.plain_every < log_every or self.step == self.total):
            print(plain_line(self.step, self.total, last), flush=True)

    def _eval(self, split) -> tuple[float | None, float | None]:
        if split is None or len(split) == 0 or not self.ranks.writes:  # rank 0 evaluates for all
            return None, None
        return evaluate(
            self.model,
            split,
            self.ds,
            self.task,
            device=self.device,
            precision=self.precision,
            channels_last=self.channels_last,
        )

    def _evaluate_and_log(self) -> dict[str, Any]:
        val_loss, val_error = self._eval(self.ds.val)
        train_loss, train_error = self._eval(self.train_eval)
        rec = {
            "kind": "eval",
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 4),
            "val_loss": val_loss,
            "val_error": val_error,
            "train_eval_loss": train_loss,
            "train_eval_error": train_error,
            "time": round(self.wall_before + time.perf_counter() - self.t_start, 3),
        }
        self.last_eval = rec
        self.log.write(rec)
        self.training.step = self.step
        for cb in self.callbacks:
            cb.on_epoch_end(self.training, rec)
        return rec

    # --- the end ---------------------------------------------------------------------------
    def _finish(self) -> dict[str, Any]:
        """The final evaluation, model.pt, the last checkpoint and result.json; ``on_end``.

        A stopped run gets result.json only: its checkpoint is already written, and it is
        evaluated when it ends for good.
        """
        ev, test = self.last_eval, (None, None)
        if self.status != "stopped":
            fresh = self.last_eval.get("step") == self.step and self.step > 0
            ev = self.last_eval if fresh else self._evaluate_and_log()
            if self.config.test:
                test = self._eval(self.ds.test)  # once, at the end, never used to choose
            # CPU tensors, so a net trained on a GPU loads anywhere with a plain torch.load
            if self.ranks.writes:
                save_torch(self.run_dir / MODEL, {k: v.detach().cpu() for k, v in self.model.state_dict().items()})
            self._save()
        result = jsonable(self._result(ev, *test))  # what the caller gets is exactly what result.json holds
        if self.ranks.writes:
            write_json(self.run_dir / RESULT, result)
        for cb in self.callbacks:
            cb.on_end(self.training, result)
        return result
