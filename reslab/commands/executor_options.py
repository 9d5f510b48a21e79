"""The options of ``reproduce``, ``study`` and ``sweep`` that say where runs train, and the executor they make.

Not a command: the commands that train many runs share it.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ..errors import ConfigError

RUNS_PER_GPU = 4  # not measured: no GPU was available where this was written
# Ray options and their defaults: given with --executor local, they are a mistake worth a line
RAY_DEFAULTS = {
    "ray_address": None,
    "shared_store": None,
    "ray_cpus": None,
    "ray_gpus": None,
    "ray_memory": None,
    "ray_retries": 3,
    "ray_checkpoints": None,
    "ray_checkpoint_every": 1000,
}


def add_executor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="run store folder (default: $RESLAB_HOME or ~/.reslab)")
    p.add_argument("--executor", default="local", choices=("local", "ray"), help="default: %(default)s")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"local worker processes (default: 1 per CPU core up to 8, {RUNS_PER_GPU} per GPU)",
    )
    ray = p.add_argument_group("with --executor ray")
    ray.add_argument("--ray-address", help="the Ray cluster to join: auto, or HOST:PORT (default: start a local Ray)")
    ray.add_argument(
        "--shared-store",
        metavar="DIR",
        help="keep the run store in DIR, a folder every node sees at that path "
        "(NFS, a cluster file system); workers write their runs there. Without it the driver owns the store "
        "(--store) and workers send their runs' files back",
    )
    ray.add_argument("--ray-cpus", type=float, help="CPUs each run reserves (and its torch threads; default 1)")
    ray.add_argument(
        "--ray-gpus",
        type=float,
        help="GPUs each run reserves; a fraction shares one GPU (default: 1 on a cluster with GPUs, else 0)",
    )
    ray.add_argument("--ray-memory", help="memory each run reserves, e.g. 4GB (default: none reserved)")
    ray.add_argument(
        "--ray-retries",
        type=int,
        default=3,
        help="times a run whose worker died is sent out again (default %(default)s)",
    )
    ray.add_argument(
        "--ray-checkpoints",
        metavar="DIR",
        help="a folder every worker can write (a bucket mount, a "
        "shared disk) for large checkpoints, instead of sending them to the driver",
    )
    ray.add_argument(
        "--ray-checkpoint-every",
        type=int,
        default=1000,
        help="steps between checkpoints of runs that "
        "set none, so a run whose worker dies continues from the last (default %(default)s)",
    )


def store_root(args: argparse.Namespace) -> str | None:
    """The run store's folder: --store, or --shared-store (the same folder, said to be shared)."""
    if args.shared_store and args.store and args.store != args.shared_store:
        raise ConfigError("--shared-store DIR is the run store; drop --store (or give the same folder)")
    return args.shared_store or args.store


def default_workers() -> int:
    """``RUNS_PER_GPU`` workers per GPU (the catalogue's small nets leave a large GPU idle: several
    runs share it); on a CPU one single-threaded worker per core, up to 8 (small nets are
    limited by Python overhead, so processes beat threads)."""
    from ..runs.executors import cores  # on use, so `reslab --help` does not load this layer

    if torch.cuda.is_available():
        return RUNS_PER_GPU * torch.cuda.device_count()
    return max(1, min(8, cores()))


def make_from_args(args: argparse.Namespace, resources: dict[str, Any] | None = None):
    """The executor the options ask for; ``resources`` (a sweep file's) fill what the options leave unset."""
    from ..runs.cluster import RunResources, parse_memory
    from ..runs.executors import make_executor
    from ..train import distributed

    if distributed.launched().active:
        raise ConfigError("torchrun runs one run across processes (`reslab train`); run this command without it")
    if args.executor == "local":
        given = [k for k, default in RAY_DEFAULTS.items() if getattr(args, k) != default]
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} applies to --executor ray")
        return make_executor("local", workers=args.workers if args.workers is not None else default_workers())
    if args.workers is not None:
        raise ConfigError("--workers applies to --executor local; with Ray, --ray-cpus/--ray-gpus size each run")
    file = resources or {}
    cpus = args.ray_cpus if args.ray_cpus is not None else file.get("cpus", 1.0)
    gpus = args.ray_gpus if args.ray_gpus is not None else file.get("gpus")
    memory = parse_memory(args.ray_memory) if args.ray_memory is not None else file.get("memory")
    return make_executor(
        "ray",
        address=args.ray_address,
        shared_store=bool(args.shared_store),
        keep=args.ray_checkpoints,
        resources=RunResources(cpus, gpus, memory),
        retries=args.ray_retries,
        checkpoint_every=args.ray_checkpoint_every,
    )
