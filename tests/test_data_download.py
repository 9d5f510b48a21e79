"""Downloads against an HTTP server on 127.0.0.1: good checksums keep the data, bad ones leave nothing."""

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import tarfile
import threading

import pytest
from test_data import tiny_fashion
from test_data_cifar import cifar_files, write_tar

from reslab.data import cifar, fashion, load_dataset
from reslab.errors import DataError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on a free loopback port; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_user_data(tmp_path, monkeypatch):
    monkeypatch.delenv("RESLAB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(fashion, "DEBIAN_DIR", tmp_path / "no-debian-package")  # as on a machine without it


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_cifar_download_with_good_checksum_is_extracted_and_loads(server, tmp_path):
    www, url = server
    archive = write_tar(www / "cifar-10-python.tar.gz", cifar_files("cifar10"))
    dest = tmp_path / "data"
    folder = cifar.fetch("cifar10", dest, base_url=url, md5=md5(archive), log=lambda s: None)
    assert folder == dest / "cifar-10-batches-py" and (folder / "data_batch_5").is_file()
    assert len(load_dataset("cifar10", data_dir=dest, val_size=6).train) == 54
    assert not [p for p in leftovers(dest) if p.startswith(".")]  # no temporary files


def test_cifar_download_with_bad_checksum_leaves_nothing(server, tmp_path):
    www, url = server
    write_tar(www / "cifar-10-python.tar.gz", cifar_files("cifar10"))
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="checksum mismatch.*expected c58f30108f718f92721af3b95e74349a"):
        cifar.fetch("cifar10", dest, base_url=url, log=lambda s: None)  # the official MD5: these bytes differ
    assert leftovers(dest) == []


def test_downloaded_archive_escaping_its_folder_is_refused_and_removed(server, tmp_path):
    www, url = server
    evil = tarfile.TarInfo("cifar-10-batches-py/../../escaped.txt")
    evil.size = 0
    archive = write_tar(www / "cifar-10-python.tar.gz", cifar_files("cifar10"), extra=[(evil, b"")])
    dest = tmp_path / "deep" / "data"
    with pytest.raises(DataError, match="outside its folder"):
        cifar.fetch("cifar10", dest, base_url=url, md5=md5(archive), log=lambda s: None)
    assert leftovers(dest) == [] and not (tmp_path / "deep" / "escaped.txt").exists()


def test_missing_file_on_the_server(server, tmp_path):
    _, url = server
    with pytest.raises(DataError, match="cannot download .*cifar-100-python.tar.gz"):
        cifar.fetch("cifar100", tmp_path / "data", base_url=url, log=lambda s: None)
    assert leftovers(tmp_path / "data") == []


def test_fashion_download_checks_each_file(server, tmp_path):
    www, url = server
    tiny_fashion(www)
    sums = {p.name.removesuffix(".gz"): md5(p) for p in www.glob("*.gz")}
    dest = tmp_path / "data"
    folder = fashion.fetch(dest, base_url=url, use_apt=False, md5s=sums, log=lambda s: None)
    assert folder == dest / "fashion-mnist" and len(list(folder.glob("*.gz"))) == 4
    assert len(load_dataset("fashion-mnist", data_dir=dest, val_size=5, verify=False).train) == 45


def test_fashion_download_with_bad_checksum_leaves_nothing(server, tmp_path):
    www, url = server
    tiny_fashion(www)
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="checksum mismatch.*train-images-idx3-ubyte.gz"):
        fashion.fetch(dest, base_url=url, use_apt=False, log=lambda s: None)  # official MD5s
    assert [p for p in leftovers(dest) if p != "fashion-mnist"] == []


def test_cli_fetch_with_bad_checksum_is_one_line_and_exit_2(server, tmp_path):
    www, url = server
    write_tar(www / "cifar-10-python.tar.gz", cifar_files("cifar10"))
    dest = tmp_path / "data"
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env.pop("RESLAB_DATA", None)
    proc = subprocess.run(
        [sys.executable, "-m", "reslab", "data", "fetch", "cifar10", "--data-dir", str(dest), "--url", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("reslab: error: checksum mismatch")
    assert leftovers(dest) == []


def test_fetch_installs_the_debian_package_and_updates_apt_only_after_a_failed_install(tmp_path, monkeypatch):
    """A fake apt-get on PATH: the first install fails (stale package lists), update, install again."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    debian = tmp_path / "no-debian-package"  # fashion.DEBIAN_DIR in these tests
    tiny_fashion(tmp_path / "pkg")
    script = bin_dir / "apt-get"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        f'if [ "$1" = install ] && [ ! -f {tmp_path}/updated ]; then exit 100; fi\n'
        f'if [ "$1" = update ]; then touch {tmp_path}/updated; exit 0; fi\n'
        f"mkdir -p {debian} && cp {tmp_path}/pkg/* {debian}/\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = fashion.fetch(tmp_path / "data", use_apt=True, log=lambda s: None)
    assert folder == debian and len(list(debian.glob("*.gz"))) == 4
    calls = log.read_text().split("\n")
    assert calls[0].startswith("install") and calls[1].startswith("update") and calls[2].startswith("install")
