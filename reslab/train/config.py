"""``TrainConfig``: one training run, fully specified, and the hash that names it in the store.

The hash covers the fields that can change a result (model, data, recipe, seed, what is
evaluated) and the identity of the data the run reads (``data.data_identity``: the digest
of its source files), in canonical JSON. Fields that only say *where* or *how often to
report* (``data_dir``, ``device``, ``log_every``, ``checkpoint_every``) are left out, so
moving the data or logging more often does not retrain anything, while other data under
the same name (a doctored copy read with ``verify=False``) is another run. The identity
enters the hash only where it differs from what the dataset's name promises (the official
files, a generator's settings), so runs stored before it was hashed keep their hashes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..data.catalog import READ_OPTIONS, data_identity, implied_identity
from ..errors import ConfigError
from ..files import jsonable
from .recipe import Recipe

UNHASHED = ("data_dir", "device", "log_every", "checkpoint_every", "compile")
COMPILE = ("auto", "on", "off")
# fields added after runs were stored: hashed only when they differ from their default, so
# the runs stored before them keep their keys
ADDED_LATER = {"convergence_check": False, "ranks": 1, "sync_bn": False}
RECIPE_ADDED_LATER = {"decay_frac": 0.2}
RECORDED = ("hash", "data_identity")  # written to config.yaml beside the fields, never read back as fields
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
SEED_RANGE = (-(2**63), 2**63 - 1)  # what torch's generators and the index's INTEGER column hold
# libyaml's safe dumper/loader when present (far faster than the pure-Python ones)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class TrainConfig:
    """A run: ``model`` (a registry name) with ``model_options`` overrides, trained on
    ``data`` (a dataset name; ``data_options`` go to ``load_dataset``) by ``recipe``.

    Args:
        seed: model initialization, data order, augmentation, dropout.
        deterministic: ``torch.use_deterministic_algorithms(True)`` for the run (CPU runs
            are then bit-for-bit repeatable, resumed or not).
        eval_every: steps between validations; 0 validates at the end of every epoch.
        eval_train_size: images of a fixed training subset evaluated in eval mode at every
            validation and at the end (the true training error the degradation claim
            needs; the per-batch error in metrics.jsonl is measured in train mode).
        test: evaluate the test split once, at the end (never used to choose anything).
        convergence_check: also train the schedule half as long, branched off this run where
            the two schedules part (a "wsd" or constant schedule shares all but its decay,
            so the check costs a tenth of the run), and record its result as
            ``result["half_schedule"]``: a converged net gains little from the longer schedule.
        ranks: processes the global batch is split across (DDP under torchrun; see
            ``distributed.py``): each normalizes BatchNorm with its own share, so it is hashed.
        sync_bn: BatchNorm statistics over the whole global batch (SyncBatchNorm; CUDA only).
        tag: any text that must make otherwise equal runs distinct (it is hashed).
        log_every: steps between metrics lines (not hashed).
        checkpoint_every: steps between checkpoints; 0 writes one at the end only (not hashed).
        compile: ``torch.compile`` the training forward and backward: "auto" where the
            compile time pays within the run (``hardware.compile_mode``), "on", "off" (not hashed).
    """

    model: str
    data: str
    recipe: Recipe = field(default_factory=Recipe)
    model_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    deterministic: bool = False
    eval_every: int = 0
    eval_train_size: int = 5000
    test: bool = True
    convergence_check: bool = False
    ranks: int = 1
    sync_bn: bool = False
    tag: str = ""
    log_every: int = 20
    checkpoint_every: int = 0
    device: str = "auto"
    data_dir: str | None = None
    compile: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.recipe, dict):
            self.recipe = Recipe.from_dict(self.recipe)
        self.model_options = dict(self.model_options or {})
        self.data_options = dict(self.data_options or {})
        if not self.model or not self.data:
            raise ConfigError("a run needs a model and a dataset")
        for name in ("eval_every", "eval_train_size", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if not isinstance(self.log_every, int) or self.log_every < 1:
            raise ConfigError(f"log_every must be an integer >= 1, got {self.log_every!r}")
        if not isinstance(self.seed, int) or not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise ConfigError(f"seed must be a 64-bit integer (-2**63 to 2**63-1), got {self.seed!r}")
        if not isinstance(self.device, str) or not DEVICE.fullmatch(self.device):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N (N a GPU number) or mps, got {self.device!r}")
        if self.compile not in COMPILE:
            raise ConfigError(f"compile must be one of {', '.join(COMPILE)}, got {self.compile!r}")
        if "data_dir" in self.data_options:
            raise ConfigError("data_dir is a TrainConfig field, not a data option")
        self._check_ranks()

    def _check_ranks(self) -> None:
        if not isinstance(self.ranks, int) or isinstance(self.ranks, bool) or self.ranks < 1:
            raise ConfigError(f"ranks must be an integer >= 1, got {self.ranks!r}")
        if self.recipe.batch_size % self.ranks:
            raise ConfigError(
                f"the batch of {self.recipe.batch_size} cannot be split evenly across {self.ranks} "
                "ranks; give a batch size that is a multiple of --nproc_per_node"
            )
        if self.sync_bn and self.ranks == 1:
            raise ConfigError("--sync-bn applies to a run across processes (torchrun --nproc_per_node=N, N > 1)")
        if self.convergence_check and self.ranks > 1:
            raise ConfigError("the convergence check trains in one process; run it without torchrun")

    def data_identity(self) -> str:
        """The identity of the data this run reads (see ``reslab.data.data_identity``)."""
        return data_identity(self.data, self.data_dir, self.data_options)

    def hashed_fields(self) -> dict[str, Any]:
        out = {k: v for k, v in self.to_dict().items() if k not in UNHASHED and ADDED_LATER.get(k, ...) != v}
        out["recipe"] = {k: v for k, v in out["recipe"].items() if RECIPE_ADDED_LATER.get(k, ...) != v}
        out["data_options"] = {k: v for k, v in self.data_options.items() if k not in READ_OPTIONS}
        identity = self.data_identity()
        if identity != implied_identity(self.data):
            out["data_identity"] = identity
        return out

    def hash(self) -> str:
        """SHA-256 of the result-changing fields as canonical JSON (sorted keys, no spaces)."""
        text = json.dumps(self.hashed_fields(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def run_id(self) -> str:
        """A readable directory name: model, data, seed, and the start of the hash."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.model}-{self.data}")
        return f"{safe}-s{self.seed}-{self.hash()[:10]}"

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["recipe"] = self.recipe.to_dict()
        # tuples as lists, so YAML, JSON and the hash agree; a NaN stays and fails the hash
        out["model_options"] = jsonable(self.model_options, nonfinite_as_none=False)
        out["data_options"] = jsonable(self.data_options, nonfinite_as_none=False)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = {k: v for k, v in data.items() if k not in RECORDED}
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown config field(s) {', '.join(unknown)}")
        return cls(**data)

    def to_yaml(self) -> str:
        recorded = {"hash": self.hash(), "data_identity": self.data_identity()}
        return yaml.dump({**self.to_dict(), **recorded}, Dumper=_Dumper, sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> TrainConfig:
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError("config must be a YAML mapping")
        return cls.from_dict(data)
