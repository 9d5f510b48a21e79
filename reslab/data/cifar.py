"""CIFAR-10 and CIFAR-100 from the standard python archives (or their extracted folders).

Looked up in ``data_dir`` (which may also be the archive or the extracted folder itself),
``$RESLAB_DATA`` and ``~/.cache/reslab``; an extracted folder is preferred to an archive in
the same place. Archives are read without being unpacked, after every member is checked by
``tarfile.data_filter`` (a member that would land outside its folder, a link, a device file
is refused). The batches are pickles: they are read by an unpickler that only builds the
few numpy types the format uses, so a crafted file cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .download import content_identity, download, user_roots

URL_ENV = "RESLAB_CIFAR_URL"  # overrides OFFICIAL_URL (a mirror, or a test server)
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class CifarFormat:
    name: str
    archive: str
    folder: str
    md5: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    num_classes: int


FORMATS = {
    "cifar10": CifarFormat(
        "cifar10",
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        "c58f30108f718f92721af3b95e74349a",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        10,
    ),
    "cifar100": CifarFormat(
        "cifar100",
        "cifar-100-python.tar.gz",
        "cifar-100-python",
        "eb9058c3a382ffc7106e4002c42a8d85",
        ("train",),
        "test",
        "meta",
        100,
    ),
}

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Builds dicts, lists, bytes and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        if module == "numpy.core.multiarray":  # numpy 2 moved it; avoid the deprecation shim
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: str, fix: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means a corrupt or foreign file
        raise DataError(f"{where} is not a readable CIFAR batch ({exc}); {fix}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where} is not a CIFAR batch (a {type(obj).__name__}, not a dict); {fix}")
    return obj


def _fix(fmt: CifarFormat) -> str:
    return f"delete it and run `reslab data fetch {fmt.name}` (or point --data-dir at a good copy)"


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The extracted folder or the archive, whichever is found first (folders first per root)."""
    fmt = FORMATS[name]
    for root in user_roots(data_dir):
        if root.name == fmt.folder and root.is_dir():
            return root
        if root.name == fmt.archive and root.is_file():
            return root
        if (root / fmt.folder).is_dir():
            return root / fmt.folder
        if (root / fmt.archive).is_file():
            return root / fmt.archive
    return None


def check_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Every member, or a DataError if one would extract outside its folder (or is a link/device)."""
    members = tar.getmembers()
    dest = str(archive.parent / ".reslab-check")
    for m in members:
        try:
            if m.name.startswith(("/", "\\")) or ".." in Path(m.name).parts:
                # the data filter would strip a leading "/"; such an archive is not the official one either way
                raise (
                    tarfile.AbsolutePathError(m)
                    if m.name.startswith(("/", "\\"))
                    else tarfile.OutsideDestinationError(m, m.name)
                )
            tarfile.data_filter(m, dest)
        except tarfile.FilterError as exc:
            raise DataError(
                f"{archive} has a member that would extract outside its folder or is unsafe ({m.name!r}: {exc}); "
                "refusing it: use the official archive"
            ) from None
    return members


def _wanted(fmt: CifarFormat) -> list[str]:
    return [*fmt.train_files, fmt.test_file, fmt.meta_file]


def _read_members(path: Path, fmt: CifarFormat) -> dict[str, bytes]:
    wanted = _wanted(fmt)
    if path.is_dir():
        out = {}
        for f in wanted:
            if not (path / f).is_file():
                raise DataError(f"{path / f} is missing; {_fix(fmt)}")
            out[f] = (path / f).read_bytes()
        return out
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {m.name: m for m in check_members(tar, path)}
            out = {}
            for f in wanted:
                member = members.get(f"{fmt.folder}/{f}")
                handle = tar.extractfile(member) if member is not None else None
                if handle is None:
                    raise DataError(f"{path} has no file {fmt.folder}/{f}; {_fix(fmt)}")
                out[f] = handle.read()
            return out
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path} is truncated or not a tar archive ({exc}); {_fix(fmt)}") from None


def _batch(obj: dict, where: str, fmt: CifarFormat, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    data, labels = obj.get(b"data"), obj.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{where}: b'data' is not an N x 3072 uint8 array; {_fix(fmt)}")
    if labels is None or len(labels) != len(data):
        raise DataError(f"{where}: {label_key!r} is missing or does not match the {len(data)} images; {_fix(fmt)}")
    labels = np.asarray(labels, dtype=np.int64)
    limit = fmt.num_classes if label_key != b"coarse_labels" else 20
    if len(labels) and (labels.min() < 0 or labels.max() >= limit):
        raise DataError(f"{where}: labels outside [0, {limit}); {_fix(fmt)}")
    # channel-major R, G, B planes of 32 x 32
    return data.reshape(-1, 3, 32, 32), labels


_CACHE: dict[tuple, tuple] = {}
_IDENTITIES: dict[tuple, str] = {}  # file stamps -> content identity, computed once per process


def _found(name: str, data_dir: str | Path | None) -> Path:
    path = locate(name, data_dir)
    if path is None:
        fmt = FORMATS[name]
        searched = ", ".join(str(r) for r in user_roots(data_dir))
        raise DataError(
            f"{name} not found (searched {searched} for {fmt.archive} or {fmt.folder}/); "
            f"run `reslab data fetch {name}` or pass --data-dir"
        )
    return path


def stamp(path: Path, fmt: CifarFormat) -> tuple:
    """Path, size and mtime of the archive, or of each member file of an extracted folder."""
    files = [path] if path.is_file() else [path / f for f in _wanted(fmt)]
    stamps = []
    for file in files:
        try:
            st = file.stat()
            stamps.append((str(file.resolve()), st.st_size, st.st_mtime_ns))
        except FileNotFoundError:  # reported by _read_members
            stamps.append((str(file), None, None))
    return tuple(stamps)


def _identity(members: dict[str, bytes]) -> str:
    return content_identity({name: hashlib.sha256(raw).hexdigest() for name, raw in members.items()})


def identity(name: str, data_dir: str | Path | None = None) -> str:
    """The content identity of the members a run would load (read and hashed once per process
    and file version; loading the data computes it too)."""
    fmt = FORMATS[name]
    path = _found(name, data_dir)
    key = stamp(path, fmt)
    if key not in _IDENTITIES:
        _IDENTITIES[key] = _identity(_read_members(path, fmt))
    return _IDENTITIES[key]


def load_raw(
    name: str, data_dir: str | Path | None = None, labels: str = "fine"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...], Path]:
    """(train_x, train_y, test_x, test_y, class names, source) for "cifar10" or "cifar100".

    Cached per process (keyed by path, size and mtime), so many runs in one process read it once.
    """
    fmt = FORMATS[name]
    path = _found(name, data_dir)
    files = stamp(path, fmt)
    key = (name, files, labels)
    if key not in _CACHE:
        raw = _read_members(path, fmt)
        _IDENTITIES[files] = _identity(raw)
        _CACHE.clear()
        _CACHE[key] = _load(raw, path, fmt, name, labels)
    return _CACHE[key]


def _load(raw: dict[str, bytes], path: Path, fmt: CifarFormat, name: str, labels: str) -> tuple:
    label_key = b"labels" if name == "cifar10" else (b"fine_labels" if labels == "fine" else b"coarse_labels")
    parts = [
        _batch(_unpickle(raw[f], f"{path}:{f}", _fix(fmt)), f"{path}:{f}", fmt, label_key) for f in fmt.train_files
    ]
    test_x, test_y = _batch(
        _unpickle(raw[fmt.test_file], f"{path}:{fmt.test_file}", _fix(fmt)), f"{path}:{fmt.test_file}", fmt, label_key
    )
    meta = _unpickle(raw[fmt.meta_file], f"{path}:{fmt.meta_file}", _fix(fmt))
    meta_key = (
        b"label_names" if name == "cifar10" else (b"fine_label_names" if labels == "fine" else b"coarse_label_names")
    )
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(meta_key, []))
    train_x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    train_y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return train_x, train_y, torch.from_numpy(test_x.copy()), torch.from_numpy(test_y), names, path


def fetch(
    name: str,
    data_dir: str | Path | None = None,
    base_url: str | None = None,
    md5: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Download the archive (MD5-checked; ``md5`` overrides the official one) and extract it.

    Extraction goes to a temporary folder with ``filter="data"`` and is renamed into place,
    so an interrupted fetch leaves no half-extracted folder.
    """
    fmt = FORMATS[name]
    found = locate(name, data_dir)
    if found is not None:
        load_raw(name, data_dir)  # raises if it is unusable
        log(f"{name}: already present at {found}")
        return found
    root = user_roots(data_dir)[0]
    root.mkdir(parents=True, exist_ok=True)
    base = base_url or os.environ.get(URL_ENV) or OFFICIAL_URL
    base = base if base.endswith("/") else base + "/"
    archive = root / fmt.archive
    log(f"{name}: downloading {base}{fmt.archive} to {archive}")
    download(base + fmt.archive, archive, md5 or fmt.md5)
    try:
        extract(archive, root, fmt)
    except DataError:
        archive.unlink(missing_ok=True)
        raise
    return root / fmt.folder


def extract(archive: Path, root: Path, fmt: CifarFormat) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{fmt.folder}.", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                check_members(tar, archive)
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive} cannot be extracted ({exc}); {_fix(fmt)}") from None
        if not (tmp / fmt.folder).is_dir():
            raise DataError(f"{archive} has no folder {fmt.folder}/; {_fix(fmt)}")
        os.replace(tmp / fmt.folder, root / fmt.folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / fmt.folder
