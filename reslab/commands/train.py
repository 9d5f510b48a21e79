"""``reslab train``: train one net (through the run store) and print its run directory last."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..data.download import check_data_dir
from ..errors import ConfigError, ReslabError
from ..train import Recipe, TrainConfig, get_recipe
from ..train.config import COMPILE
from ..train.hardware import COMPILE_MIN_STEPS_CUDA
from ..train.recipe import PRECISIONS

# recipe fields a flag can set: flag dest -> Recipe field
RECIPE_FLAGS = {
    "epochs": "epochs",
    "max_steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "precision": "precision",
    "optimizer": "optimizer",
    "momentum": "momentum",
    "nesterov": "nesterov",
    "weight_decay": "weight_decay",
    "schedule": "schedule",
    "warmup": "warmup",
    "warmup_steps": "warmup_steps",
    "label_smoothing": "label_smoothing",
    "crop": "crop",
    "flip": "flip",
}
CONFIG_FLAGS = (
    "sync_bn",
    "model",
    "data",
    "data_dir",
    "seed",
    "deterministic",
    "recipe",
    "model_opt",
    "data_opt",
    "train_size",
    "val_size",
    "log_every",
    "eval_every",
    "eval_train_size",
    "checkpoint_every",
    "device",
    "compile",
    *RECIPE_FLAGS,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a dataset (stored, resumable); prints the run directory last",
        description="Train a registered model on a dataset. A config that already finished is not trained "
        "again; an interrupted one resumes. The last line printed is the run directory.",
    )
    p.add_argument("--model", help="registered model name (see `reslab models`)")
    p.add_argument("--data", help="dataset name (see `reslab data ls`)")
    p.add_argument("--data-dir", help="folder searched first for dataset files")
    p.add_argument("--recipe", help="named recipe preset (he2015_cifar, he2015_cifar_warmup, quick, transformer)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="train for this many epochs (default: the recipe's, else 1)")
    length.add_argument("--max-steps", type=int, help="train for this many optimizer steps")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--optimizer", choices=("sgd", "adamw"))
    p.add_argument("--momentum", type=float)
    p.add_argument("--nesterov", action="store_true", default=None)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=("step", "cosine", "constant", "wsd"))
    p.add_argument("--warmup", choices=("none", "linear", "he2015"))
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--crop", type=int, help="pad-and-crop augmentation, in pixels (default: the dataset's)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="horizontal flips")
    p.add_argument("--precision", choices=("auto", *PRECISIONS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (bit-exact on CPU)")
    p.add_argument("--train-size", type=int, help="train on a subset of this many images")
    p.add_argument("--val-size", type=int, help="images held out for validation (default 5000 for real data)")
    p.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE", help="model override, repeatable")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE", help="dataset option, repeatable")
    p.add_argument("--log-every", type=int, default=20, help="steps between metrics lines")
    p.add_argument("--eval-every", type=int, default=0, help="steps between validations (default: every epoch)")
    p.add_argument("--eval-train-size", type=int, default=5000, help="training images evaluated in eval mode")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (0: at the end only)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda[:N]")
    p.add_argument(
        "--compile",
        default="auto",
        choices=COMPILE,
        help=f"torch.compile the training step (auto: on a GPU, for runs of {COMPILE_MIN_STEPS_CUDA:,} steps or more)",
    )
    p.add_argument(
        "--sync-bn",
        action="store_true",
        help="under torchrun: BatchNorm statistics over the whole "
        "global batch (GPUs only; default: each rank its own, as in the papers)",
    )
    p.add_argument(
        "--out",
        help="put a new run's directory under this folder (indexed all the same); a run stored already stays "
        "where it is (`reslab runs mv RUN DIR` moves it)",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    p.add_argument("--store", help="run store folder (default $RESLAB_HOME, else ~/.reslab)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events (needs tensorboard)")
    p.set_defaults(func=run, computes=True)


def parse_pairs(pairs: list[str], what: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values are read as YAML (numbers, booleans, lists)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} must be KEY=VALUE, got {pair!r}")
        try:
            out[key.replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"cannot read the value of {what} {pair!r}") from None
    return out


def build_config(args: argparse.Namespace, ranks: int = 1) -> TrainConfig:
    """The run the flags describe; ``ranks``: the processes torchrun started."""
    if not args.model or not args.data:
        raise ConfigError("train needs --model and --data (or --resume RUN_DIR)")
    check_data_dir(args.data_dir)
    changes = {field: getattr(args, flag) for flag, field in RECIPE_FLAGS.items() if getattr(args, flag) is not None}
    recipe = get_recipe(args.recipe) if args.recipe else Recipe()
    recipe = recipe.replace(**changes) if changes else recipe
    data_options = parse_pairs(args.data_opt, "--data-opt")
    for key in ("train_size", "val_size"):
        if getattr(args, key) is not None:
            data_options[key] = getattr(args, key)
    return TrainConfig(
        model=args.model,
        data=args.data,
        recipe=recipe,
        model_options=parse_pairs(args.model_opt, "--model-opt"),
        data_options=data_options,
        seed=args.seed,
        deterministic=args.deterministic,
        eval_every=args.eval_every,
        eval_train_size=args.eval_train_size,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
        data_dir=args.data_dir,
        ranks=ranks,
        sync_bn=args.sync_bn,
        compile=args.compile,
    )


DEFAULTS = {
    "seed": 0,
    "deterministic": False,
    "log_every": 20,
    "eval_every": 0,
    "eval_train_size": 5000,
    "checkpoint_every": 500,
    "device": "auto",
    "compile": "auto",
    "model_opt": [],
    "data_opt": [],
    "sync_bn": False,
}


def run(args: argparse.Namespace) -> int:
    """Train in this process, or as one of the ranks torchrun started (``train/distributed.py``)."""
    from ..train import distributed  # on use, so `reslab --help` does not load torch.distributed

    if not distributed.launched().active:
        return _train(args, distributed.ONE)
    with distributed.process_group() as ranks:
        return _train(args, ranks)


@dataclass
class _Plan:
    """What rank 0 decided (every rank follows it): the run, its directory, whether it is done."""

    config: TrainConfig
    run_dir: Path | None  # None: a new run placed by the store (one process)
    done: bool = False


def _train(args: argparse.Namespace, ranks) -> int:
    from ..train import distributed, train

    store, plan = None, None
    if ranks.writes:  # rank 0 alone opens the store; the others learn the plan (or the mistake) from it
        try:
            store, plan = _plan(args, ranks)
        except ReslabError as exc:
            plan = exc
    plan = distributed.broadcast(plan, ranks)
    if isinstance(plan, ReslabError):
        if ranks.writes:
            raise plan
        return 2  # rank 0 says why
    if plan.done:
        return 0
    if not ranks.writes:
        train(plan.config, plan.run_dir, resume=True)
        return 0
    try:
        record = store.run(plan.config, out=args.out, run_dir=plan.run_dir, progress=True, tensorboard=args.tensorboard)
    except KeyboardInterrupt:
        where = plan.run_dir or (found.dir if (found := store.lookup(plan.config)) else None)
        if where:
            launch = f"torchrun --nproc_per_node={ranks.world} -m reslab" if ranks.active else "reslab"
            print(f"stopped at a checkpoint; continue with: {launch} train --resume {where}", file=sys.stderr)
        raise
    _say_if_elsewhere(record, args.out)
    print(record.dir)
    return 0


def _plan(args: argparse.Namespace, ranks):
    """Rank 0's decision: the store, and the run to train (or that it is trained already, said here)."""
    from .runs import open_store  # on use, so `reslab --help` does not load the runs layer

    if args.out and Path(args.out).expanduser().exists() and not Path(args.out).expanduser().is_dir():
        raise ConfigError(f"--out {args.out} is a file; name a folder (it is created if missing)")
    store = open_store(args.store)
    if args.resume:
        given = [f for f in CONFIG_FLAGS if getattr(args, f) not in (None, DEFAULTS.get(f))]
        if given or args.out:
            flags = ", ".join("--" + f.replace("_", "-") for f in given + (["out"] if args.out else []))
            raise ConfigError(f"--resume continues a run with its own config.yaml; drop {flags}")
        run_dir = Path(args.resume).expanduser()
        config = store.resumable(run_dir)
        _check_ranks(config, ranks)
        return store, _Plan(config, run_dir)
    config = build_config(args, ranks.world)
    _check_ranks(config, ranks)
    existing = store.lookup(config)
    if existing is not None and existing.done:
        print(f"already trained (config {existing.hash[:10]}): {_summary(existing.result)}")
        _say_if_elsewhere(existing, args.out)
        print(existing.dir)
        return store, _Plan(config, existing.dir, done=True)
    if existing is not None and existing.problem:
        print(f"reslab: run {existing.id} ended before, but {existing.problem}; training it again", file=sys.stderr)
    return store, _Plan(config, store.place(config, args.out) if ranks.active else None)


def _check_ranks(config: TrainConfig, ranks) -> None:
    """Before any rank starts: the run's config fits the processes that run it (else one line, from rank 0)."""
    from ..train import distributed
    from ..train.setup import resolve_device

    distributed.check(config.ranks, config.sync_bn, resolve_device(config.device), ranks)


def _say_if_elsewhere(record, out: str | None) -> None:
    """``--out`` places new runs only: say where a run stored before is, and how to have it in ``out``."""
    from pathlib import Path

    if out and Path(record.dir).parent.resolve() != Path(out).expanduser().resolve():
        print(
            f"reslab: note: this run was stored before, at {record.dir}, not under {out}; `reslab runs mv "
            f"{record.id} {out}` moves it there (or `reslab runs rm {record.id}`, then train again)",
            file=sys.stderr,
        )


def _summary(result: dict[str, Any] | None) -> str:
    if not result:
        return "no result"

    def show(v):
        if v is None:
            return "n/a"
        return f"{v:.4g}" if result.get("error_metric") == "mse" else f"{100 * v:.2f}%"

    return (
        f"{result['status']}, {result['steps']} steps, train {show(result.get('train_error'))}, "
        f"val {show(result.get('val_error'))}, test {show(result.get('test_error'))}"
    )
