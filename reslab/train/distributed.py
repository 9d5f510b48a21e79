"""One run across processes: PyTorch DDP under ``torchrun --nproc_per_node=N -m reslab train ...``.

The loop calls the small hooks here, each a no-op in one process:

- the process group: gloo for CPU tensors, NCCL for CUDA tensors (both where there are
  GPUs), one GPU per rank (``LOCAL_RANK``);
- the global batch is split across ranks: every rank draws the same batch order and
  augmentation, and takes its contiguous share of each global batch (``BatchLoader``'s
  ``shard``), so N ranks see together exactly the batches one process would;
- gradients are averaged by DDP; BatchNorm normalizes with each rank's own statistics (as in
  the papers' multi-GPU training, and DDP broadcasts rank 0's running averages) unless
  ``sync_bn`` (SyncBatchNorm: CUDA only);
- the numbers a step logs and the loop decides on (loss, errors, a non-finite loss, a request
  to stop) are reduced over the ranks, so every rank takes the same decision at the same step;
- only rank 0 evaluates and writes: the run directory, metrics, checkpoints (which hold every
  rank's random generators) and the model.

A run's ``ranks`` and ``sync_bn`` are part of its config (and of its hash when not 1 and False:
per-rank BatchNorm statistics make it another experiment); it resumes only with as many ranks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def writes(self) -> bool:
        """Rank 0 alone evaluates and writes the run's files."""
        return self.rank == 0


ONE = Ranks()


def launched() -> Ranks:
    """The ranks torchrun started (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process otherwise."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return ONE
    try:
        ranks = Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None
    if not 0 <= ranks.rank < ranks.world:
        raise ConfigError(f"RANK {ranks.rank} is not below WORLD_SIZE {ranks.world}")
    return ranks


def current() -> Ranks:
    """This process's place in the process group (one process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return ONE
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


@contextlib.contextmanager
def process_group() -> Iterator[Ranks]:
    """Join the ranks torchrun started (from its environment), and leave at the end."""
    ranks = launched()
    gpus = torch.cuda.is_available()
    if gpus:
        torch.cuda.set_device(ranks.local_rank % torch.cuda.device_count())
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if gpus else "gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def check(config_ranks: int, sync_bn: bool, device: torch.device, ranks: Ranks) -> None:
    """The run's config asks for the ranks it runs on."""
    if config_ranks != ranks.world:
        how = f"torchrun --nproc_per_node={config_ranks} -m reslab train" if config_ranks > 1 else "reslab train"
        raise ConfigError(
            f"this run trains in {config_ranks} process(es) (its config says ranks: {config_ranks}), "
            f"not {ranks.world}: start it with {how}"
        )
    if sync_bn and device.type != "cuda":
        raise ConfigError(
            "--sync-bn needs GPUs (SyncBatchNorm runs on CUDA only); on CPUs each rank keeps its "
            "own BatchNorm statistics, as without --sync-bn"
        )
    if ranks.active and device.type == "cuda" and device.index is not None:
        raise ConfigError("under torchrun each rank trains on its own GPU (LOCAL_RANK): use --device cuda or auto")


def seed_rank(seed: int, ranks: Ranks) -> None:
    """After the model is built (the same on every rank): each rank its own random stream
    (dropout, drop-path), rank 0 keeping the run's. Nothing changes in one process."""
    if ranks.rank > 0:
        torch.manual_seed((seed * 1_000_003 + ranks.rank * 7919) % (2**63))


def wrap(model: nn.Module, ranks: Ranks, device: torch.device, sync_bn: bool) -> nn.Module:
    """What the training step calls: ``model`` itself in one process, else DDP around it
    (``model`` stays what is evaluated, saved and checkpointed)."""
    if not ranks.active:
        return model
    if sync_bn:
        nn.SyncBatchNorm.convert_sync_batchnorm(model)  # in place: the parameters stay the optimizer's
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def batch_totals(
    loss: torch.Tensor, wrong: torch.Tensor, count: torch.Tensor | int, ranks: Ranks
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | int]:
    """A step's loss (the mean over ranks: the global batch's mean), wrong predictions and
    scored count (summed), in one reduction; unchanged in one process."""
    if not ranks.active:
        return loss, wrong, count
    on_device = isinstance(count, torch.Tensor)
    values = torch.stack([loss.detach().double(), wrong.double(), count.double() if on_device else wrong.double() * 0])
    dist.all_reduce(values)
    total = values[2] if on_device else count * ranks.world
    return values[0] / ranks.world, values[1], total


def agree(asked: bool, ranks: Ranks, device: torch.device) -> bool:
    """True on every rank when any rank asks (to stop); a collective: every rank must call it."""
    if not ranks.active:
        return asked
    flag = torch.tensor([float(asked)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def gather(value: Any, ranks: Ranks) -> list[Any]:
    """Every rank's ``value``, in rank order (a collective)."""
    if not ranks.active:
        return [value]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, value)
    return out


def broadcast(value: Any, ranks: Ranks) -> Any:
    """Rank 0's ``value`` on every rank (a collective)."""
    if not ranks.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ranks: Ranks) -> None:
    if ranks.active:
        dist.barrier()


class Silent:
    """The metrics log of ranks other than 0: they write nothing."""

    def write(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
