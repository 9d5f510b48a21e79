"""Fashion-MNIST from its IDX files, found on disk or fetched (Debian package or download).

Lookup order: ``data_dir``, ``$RESLAB_DATA``, ``~/.cache/reslab`` (each as the folder
itself or its ``fashion-mnist/`` subfolder), then ``/usr/share/datasets/fashion-mnist``
(Debian's ``dataset-fashion-mnist``). Files may be gzipped or not. Debian re-compresses the
``.gz`` files, so content is verified by the SHA-256 of the decompressed bytes, not by the
MD5 of the archives (which is checked when downloading the official files).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .download import content_identity, download, user_roots

NAME = "fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
URL_ENV = "RESLAB_FASHION_MNIST_URL"  # overrides OFFICIAL_URL (a mirror, or a test server)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FIX = "delete it and run `reslab data fetch fashion-mnist`"

# file -> (MD5 of the official .gz, decompressed size, SHA-256 of the decompressed bytes); data-facts.md
FILES = {
    "train-images-idx3-ubyte": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        47_040_016,
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train-labels-idx1-ubyte": (
        "25c81989df183df01b3e8a0aad5dffbe",
        60_008,
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "t10k-images-idx3-ubyte": (
        "bef4ecab320f06d8554ea6380940ec79",
        7_840_016,
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "t10k-labels-idx1-ubyte": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        10_008,
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}

# the content identity of the official files (what verification accepts)
OFFICIAL_IDENTITY = content_identity({name: sha for name, (_, _, sha) in FILES.items()})

_CACHE: dict[tuple, tuple[torch.Tensor, ...]] = {}
_IDENTITIES: dict[tuple, str] = {}  # file stamps -> content identity, computed once per process


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def locate(data_dir: str | Path | None = None) -> Path | None:
    """The first folder holding all four files, or None."""
    folders = []
    for root in user_roots(data_dir):
        folders += [root, root / NAME]
    folders.append(DEBIAN_DIR)
    for folder in folders:
        if all(_file_in(folder, name) for name in FILES):
            return folder
    return None


def _read(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is truncated or corrupt ({exc}); {FIX}") from None


def parse_idx(raw: bytes, path: Path, kind: str) -> np.ndarray:
    """An IDX file's array: images (magic 2051) as (N, rows, cols), labels (2049) as (N,)."""
    magic, ndim = (2051, 3) if kind == "images" else (2049, 1)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated ({len(raw)} bytes, shorter than an IDX header); {FIX}")
    dims = np.frombuffer(raw[:header], dtype=">u4")
    if dims[0] != magic:
        raise DataError(f"{path} is not an IDX {kind} file (magic {int(dims[0])}, expected {magic}); {FIX}")
    shape = tuple(int(d) for d in dims[1:])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"{path} is {problem} ({len(raw)} bytes, header says {expected}); {FIX}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _load_file(folder: Path, name: str, verify: bool) -> tuple[np.ndarray, str]:
    """The file's array and the SHA-256 of its decompressed bytes."""
    path = _file_in(folder, name)
    if path is None:
        raise DataError(f"{folder / name}(.gz) is missing; run `reslab data fetch fashion-mnist`")
    raw = _read(path)
    _, size, sha = FILES[name]
    digest = hashlib.sha256(raw).hexdigest()
    if verify and (len(raw) != size or digest != sha):
        raise DataError(
            f"{path} does not match the official Fashion-MNIST ({len(raw)} bytes decompressed, "
            f"SHA-256 differs); {FIX}, or pass verify=False for IDX files of your own"
        )
    return parse_idx(raw, path, "images" if "images" in name else "labels"), digest


def _folder(data_dir: str | Path | None) -> Path:
    folder = locate(data_dir)
    if folder is None:
        searched = [str(r) for r in user_roots(data_dir)] + [str(DEBIAN_DIR)]
        raise DataError(
            f"Fashion-MNIST not found (searched {', '.join(searched)}); run `reslab data fetch fashion-mnist`"
        )
    return folder


def _stamps(folder: Path) -> tuple:
    """Path, size and mtime of the four files: a changed file is read (and hashed) again."""
    stamps = []
    for name in FILES:
        path = _file_in(folder, name)
        st = path.stat()
        stamps.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(stamps)


def identity(data_dir: str | Path | None = None, verify: bool = True) -> str:
    """The content identity of the files a run would load (see ``download.content_identity``).

    Verified files can only be the official ones, so their identity is known without
    reading anything; unverified files are hashed once per process and file version.
    """
    if verify:
        return OFFICIAL_IDENTITY
    folder = _folder(data_dir)
    stamps = _stamps(folder)
    if stamps not in _IDENTITIES:
        digests = {name: hashlib.sha256(_read(_file_in(folder, name))).hexdigest() for name in FILES}
        _IDENTITIES[stamps] = content_identity(digests)
    return _IDENTITIES[stamps]


def load_raw(data_dir: str | Path | None = None, verify: bool = True) -> tuple[torch.Tensor, ...]:
    """(train_x, train_y, test_x, test_y): uint8 images (N, 1, 28, 28) and int64 labels.

    Cached per process (keyed by path, size and mtime), so many runs in one process read
    the files once.
    """
    folder = _folder(data_dir)
    stamps = _stamps(folder)
    key = (stamps, verify)
    if key not in _CACHE:
        loaded = {name: _load_file(folder, name, verify) for name in FILES}
        arrays = {name: array for name, (array, _) in loaded.items()}
        _IDENTITIES[stamps] = content_identity({name: digest for name, (_, digest) in loaded.items()})
        out = []
        for split in ("train", "t10k"):
            images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
            if len(images) != len(labels):
                raise DataError(f"{folder}: {split} has {len(images)} images but {len(labels)} labels; {FIX}")
            if len(labels) and labels.max() >= len(CLASSES):
                raise DataError(f"{folder}: {split} labels go up to {labels.max()} (10 classes); {FIX}")
            out += [torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))]
        _CACHE.clear()  # keep one copy in memory, not one per location ever read
        _CACHE[key] = tuple(out)
    return _CACHE[key]


def fetch(
    data_dir: str | Path | None = None,
    base_url: str | None = None,
    use_apt: bool | None = None,
    log: Callable[[str], None] = print,
    md5s: dict[str, str] | None = None,
) -> Path:
    """Make Fashion-MNIST available; returns the folder that holds it.

    As root with apt (``use_apt=None`` decides by itself), installs Debian's
    ``dataset-fashion-mnist`` (``apt-get update`` only if the first install fails);
    otherwise downloads the four official files and checks their MD5s (``md5s`` maps a
    file name to another expected MD5, for a mirror that serves other bytes).
    """
    folder = locate(data_dir)
    if folder is not None:
        try:
            load_raw(data_dir, verify=True)
            log(f"fashion-mnist: already present and verified at {folder}")
            return folder
        except DataError as exc:
            log(f"fashion-mnist: the copy at {folder} is unusable ({exc}); fetching again")
    if use_apt is None:
        use_apt = base_url is None and os.environ.get(URL_ENV) is None and _can_apt()
    if use_apt:
        if _apt_install(log):
            return DEBIAN_DIR
        log("fashion-mnist: apt could not install it; downloading the official files instead")
    return _download_all(user_roots(data_dir)[0] / NAME, base_url, log, md5s or {})


def _can_apt() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_install(log: Callable[[str], None]) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", DEBIAN_PACKAGE]
    for attempt in ("install", "update"):
        if attempt == "update":
            log("fashion-mnist: apt-get install failed; running apt-get update and trying again")
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        log(f"fashion-mnist: {' '.join(cmd)}")
        if subprocess.run(cmd, env=env, capture_output=True).returncode == 0 and all(
            _file_in(DEBIAN_DIR, n) for n in FILES
        ):
            return True
    return False


def _download_all(folder: Path, base_url: str | None, log: Callable[[str], None], md5s: dict[str, str]) -> Path:
    base = base_url or os.environ.get(URL_ENV) or OFFICIAL_URL
    base = base if base.endswith("/") else base + "/"
    log(f"fashion-mnist: downloading 4 files from {base} to {folder}")
    for name, (md5, _, _) in FILES.items():
        download(base + f"{name}.gz", folder / f"{name}.gz", md5s.get(name, md5))
    return folder
