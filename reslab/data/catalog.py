"""``load_dataset(name, ...)``: every dataset reslab knows, by name, as in-memory splits.

Real datasets hold out a validation split by default (5,000 images: He2015's 45k/5k for
CIFAR, 55k/5k for Fashion-MNIST), chosen by ``data_seed`` alone so that every training
seed sees the same held-out images. The test split is only ever evaluated once, at the
end of a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from . import cifar, fashion, synthetic
from .base import Dataset, Split, channel_stats, hold_out
from .download import check_data_dir

REAL = ("fashion-mnist", "cifar10", "cifar100")
DATASETS = REAL + tuple(synthetic.TASKS)
DEFAULT_VAL_SIZE = {"fashion-mnist": 5000, "cifar10": 5000, "cifar100": 5000}
# options that say how to read data, not what the data is (they never change a result)
READ_OPTIONS = ("verify",)
# a synthetic task's identity: its generator settings and seed, which the config holds already
GENERATED = "generated"
# the last few datasets loaded, so a study training many runs in one process splits and
# normalizes once; callers must treat the tensors as read-only
_CACHE: dict[tuple, Dataset] = {}


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    train_size: int | None = None,
    val_size: int | None = None,
    data_seed: int = 0,
    **options: Any,
) -> Dataset:
    """Load ``name`` with a held-out validation split and an optional training subset.

    Args:
        data_dir: a folder to search first (see ``reslab data ls`` for the search order).
        train_size: use only this many training images (a nested subset: smaller subsets
            are part of larger ones); None uses all that are not held out.
        val_size: images held out of the training set for validation (default 5,000 for
            real data; 0 for none). For synthetic tasks: the size of the generated split.
        data_seed: chooses the validation images (real data) or generates the data
            (synthetic tasks).
        options: ``verify=False`` (Fashion-MNIST: accept IDX files whose checksums differ
            from the official ones), ``labels="coarse"`` (CIFAR-100's 20 superclasses);
            ``image_size`` (real images averaged down to that size), ``test_size`` (the
            first N test images; real data and synthetic tasks alike), and synthetic
            tasks take their generator's options (e.g.
            ``seq_len``, ``vocab``, ``dim``).

    The last few datasets are cached in memory (files are re-read when they change):
    treat the returned tensors as read-only.
    """
    if name not in synthetic.TASKS:
        check_data_dir(data_dir)
    key = (name, _stamp(name, data_dir), train_size, val_size, data_seed, tuple(sorted(options.items())))
    if key in _CACHE:
        return _CACHE[key]
    dataset = _load(name, data_dir, train_size, val_size, data_seed, options)
    dataset.info["identity"] = data_identity(name, data_dir, options)  # known now: loading computed it
    if len(_CACHE) >= 4:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = dataset
    return dataset


def data_identity(name: str, data_dir: str | Path | None = None, options: dict[str, Any] | None = None) -> str:
    """What a run of ``name`` would train on: ``sha256:...`` over the digests of the source files
    it would load (Fashion-MNIST's four files, CIFAR's archive members), or ``GENERATED`` for a
    synthetic task. Cheap: verified official files are known without reading them, and
    others are hashed once per process and file version. Subsets (train_size, image_size,
    the validation split) are options of the config, not part of this identity.
    """
    options = options or {}
    if name in synthetic.TASKS:
        return GENERATED
    check_data_dir(data_dir)
    if name == "fashion-mnist":
        return fashion.identity(data_dir, verify=options.get("verify", True))
    if name in cifar.FORMATS:
        return cifar.identity(name, data_dir)
    raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} (see `reslab data ls`)")


def implied_identity(name: str) -> str | None:
    """The identity a dataset's name already promises: the official Fashion-MNIST files, or the
    generator of a synthetic task. Run hashes name the data explicitly only when it differs."""
    if name == "fashion-mnist":
        return fashion.OFFICIAL_IDENTITY
    return GENERATED if name in synthetic.TASKS else None


def _stamp(name: str, data_dir: str | Path | None) -> tuple:
    """Where a real dataset's files are and when they changed (synthetic data has no files)."""
    if name == "fashion-mnist":
        folder = fashion.locate(data_dir)
        files = [p for p in (folder.glob("*-ubyte*") if folder else []) if p.is_file()]
        return tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    if name in ("cifar10", "cifar100"):
        path = cifar.locate(name, data_dir)
        return cifar.stamp(path, cifar.FORMATS[name]) if path else ()
    return ()


def _load(name: str, data_dir, train_size, val_size, data_seed: int, options: dict[str, Any]) -> Dataset:
    if name in synthetic.TASKS:
        return synthetic.make(name, seed=data_seed, train_size=train_size, val_size=val_size, **options)
    if name not in REAL:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} (see `reslab data ls`)")
    common = {"image_size", "test_size"}
    allowed = {"fashion-mnist": {"verify"} | common, "cifar10": common, "cifar100": {"labels"} | common}[name]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"dataset {name} does not take {', '.join(unknown)}; it takes train_size, val_size, data_seed"
            + "".join(f", {a}" for a in sorted(allowed))
        )
    if name == "fashion-mnist":
        train_x, train_y, test_x, test_y = fashion.load_raw(data_dir, verify=options.get("verify", True))
        classes, source, num_classes = fashion.CLASSES, str(fashion.locate(data_dir)), 10
    else:
        labels = options.get("labels", "fine")
        if labels not in ("fine", "coarse"):
            raise ConfigError(f"labels must be 'fine' or 'coarse', got {labels!r}")
        train_x, train_y, test_x, test_y, classes, path = cifar.load_raw(name, data_dir, labels)
        num_classes = 20 if labels == "coarse" else cifar.FORMATS[name].num_classes
        source = str(path)
    test_size = options.get("test_size")
    if test_size is not None:
        if not isinstance(test_size, int) or not 0 < test_size <= len(test_x):
            raise ConfigError(f"{name}: test_size must be in [1, {len(test_x)}], got {test_size!r}")
        # the first test_size test images (the official order is already class-balanced enough)
        test_x, test_y = test_x[:test_size], test_y[:test_size]
    if options.get("image_size"):
        train_x, test_x = (downsample(x, options["image_size"]) for x in (train_x, test_x))
    val_size = DEFAULT_VAL_SIZE[name] if val_size is None else val_size
    train, val = hold_out(Split(train_x, train_y), val_size, train_size, data_seed, name)
    mean, std = channel_stats(train.x)
    info = {"data_seed": data_seed, **{k: v for k, v in options.items() if k not in READ_OPTIONS}}
    return Dataset(
        name,
        "classification",
        train,
        val,
        Split(test_x, test_y),
        tuple(train_x.shape[1:]),
        num_classes,
        classes=tuple(classes),
        mean=mean,
        std=std,
        source=source,
        info=info,
    )


def downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) averaged down to size x size (H must be a multiple of size).

    A cheaper version of the same task: the quick studies train on 14x14 Fashion-MNIST so
    that deep CNNs fit the CPU budget (4x fewer pixels, the same ten classes).
    """
    height = images.shape[-1]
    if not isinstance(size, int) or size < 1 or height % size:
        raise ConfigError(f"image_size must divide the image size {height}, got {size!r}")
    if size == height:
        return images
    factor = height // size
    out = torch.cat([F.avg_pool2d(chunk.float(), factor) for chunk in images.split(10_000)])
    return out.round_().to(torch.uint8)


def dataset_status(data_dir: str | Path | None = None) -> list[dict[str, str]]:
    """For ``reslab data ls``: each dataset, where it was found, how to get it if missing."""
    check_data_dir(data_dir)
    rows = []
    found = fashion.locate(data_dir)
    rows.append(
        {
            "name": "fashion-mnist",
            "kind": "real",
            "where": str(found) if found else "missing",
            "how": "" if found else "reslab data fetch fashion-mnist (Debian package as root, else download)",
        }
    )
    for name in ("cifar10", "cifar100"):
        found = cifar.locate(name, data_dir)
        archive = cifar.FORMATS[name].archive
        rows.append(
            {
                "name": name,
                "kind": "real",
                "where": str(found) if found else "missing",
                "how": "" if found else f"reslab data fetch {name}, or put {archive} in --data-dir / $RESLAB_DATA",
            }
        )
    for name, (_, task, sizes) in synthetic.TASKS.items():
        rows.append(
            {
                "name": name,
                "kind": f"synthetic ({task})",
                "where": "generated from data_seed",
                "how": f"train/val/test {sizes[0]}/{sizes[1]}/{sizes[2]} by default",
            }
        )
    return rows
