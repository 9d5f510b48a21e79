"""Where data lives, and downloads that are checked before they are kept.

A file is downloaded to a temporary name beside its destination (``atomic_write``), its
checksum compared, and only then renamed into place: an interrupted or corrupt download leaves nothing
behind that a later run could mistake for data.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from ..errors import DataError
from ..files import atomic_write

CHUNK = 1 << 20


def user_roots(data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for data, in order: ``data_dir``, ``$RESLAB_DATA``, ``~/.cache/reslab``.

    The first one is also where a fetch puts what it downloads.
    """
    roots = [Path(data_dir).expanduser()] if data_dir else []
    if os.environ.get("RESLAB_DATA"):
        roots.append(Path(os.environ["RESLAB_DATA"]).expanduser())
    roots.append(Path("~/.cache/reslab").expanduser())
    return roots


def check_data_dir(data_dir: str | Path | None) -> None:
    """A data folder the user named must exist (searching a missing one would silently fall through)."""
    if data_dir and not Path(data_dir).expanduser().exists():
        raise DataError(f"the data folder {data_dir} (--data-dir) does not exist; give an existing folder or omit it")


def content_identity(digests: dict[str, str]) -> str:
    """One name for a dataset's content: the SHA-256 of its files' names and SHA-256 digests."""
    listing = "".join(f"{name} {digest}\n" for name, digest in sorted(digests.items()))
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def download(url: str, dest: Path, md5: str | None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest``, verifying its MD5 before the file appears under its name."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, lambda out: _fetch(url, out, md5, timeout, dest.name))
    return dest


def _fetch(url: str, out: BinaryIO, md5: str | None, timeout: float, name: str) -> None:
    """Stream ``url`` into ``out``; a failed or corrupt download raises ``DataError``."""
    h = hashlib.md5()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http(s) URLs by design)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url}: {reason}; check the network or fetch the file by hand") from None
    with response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=None, file=sys.stderr) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, urllib.error.URLError) as exc:
                    raise DataError(f"download of {url} broke off: {exc}; try again") from None
                if not chunk:
                    break
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
    if md5 is not None and h.hexdigest() != md5:
        raise DataError(
            f"checksum mismatch for {url}: MD5 {h.hexdigest()}, expected {md5}; "
            "the file is corrupt or not the official one (nothing was kept; try again or fetch it by hand)"
        )
