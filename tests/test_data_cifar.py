"""CIFAR-10/100 from archives written here in the exact python format, and archives that must be refused."""

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from reslab.data import load_dataset
from reslab.data.cifar import FORMATS
from reslab.errors import DataError

N_PER_BATCH = 12


def batch(n, label_key, rng, classes):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return {
        b"batch_label": b"training batch",
        label_key: [int(v) for v in rng.integers(0, classes, size=n)],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def cifar_files(name, seed=0):
    """{relative path: pickled bytes}, as in the real archive (protocol 2, bytes keys)."""
    rng = np.random.default_rng(seed)
    fmt = FORMATS[name]
    files = {}
    if name == "cifar10":
        for f in fmt.train_files:
            files[f] = batch(N_PER_BATCH, b"labels", rng, 10)
        files[fmt.test_file] = batch(N_PER_BATCH, b"labels", rng, 10)
        files[fmt.meta_file] = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": 12}
    else:
        for f in (*fmt.train_files, fmt.test_file):
            b = batch(3 * N_PER_BATCH, b"fine_labels", rng, 100)
            b[b"coarse_labels"] = [v // 5 for v in b[b"fine_labels"]]
            files[f] = b
        files[fmt.meta_file] = {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        }
    return {f"{fmt.folder}/{k}": pickle.dumps(v, protocol=2) for k, v in files.items()}


def write_tar(path, files, extra=()):
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for info, raw in extra:
            tar.addfile(info, io.BytesIO(raw) if raw is not None else None)
    return path


def test_cifar10_archive_loads_with_its_layout(tmp_path):
    files = cifar_files("cifar10")
    write_tar(tmp_path / "cifar-10-python.tar.gz", files)
    ds = load_dataset("cifar10", data_dir=tmp_path, val_size=10)
    assert len(ds.train) == 5 * N_PER_BATCH - 10 and len(ds.val) == 10 and len(ds.test) == N_PER_BATCH
    assert ds.shape == (3, 32, 32) and ds.classes[3] == "class3" and ds.num_classes == 10
    test = pickle.loads(files["cifar-10-batches-py/test_batch"], encoding="bytes")
    # channel-major rows: the first 1024 values are the red plane, row by row
    assert torch.equal(ds.test.x[0, 0], torch.from_numpy(test[b"data"][0, :1024].reshape(32, 32)))
    assert torch.equal(ds.test.x[0, 2], torch.from_numpy(test[b"data"][0, 2048:].reshape(32, 32)))
    assert ds.test.y.tolist() == test[b"labels"]


def test_cifar_from_the_extracted_folder_and_the_archive_path(tmp_path):
    files = cifar_files("cifar10", seed=1)
    for rel, raw in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(raw)
    from_folder = load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py", val_size=0)
    (tmp_path / "a").mkdir()
    archive = write_tar(tmp_path / "a" / "cifar-10-python.tar.gz", files)
    from_archive = load_dataset("cifar10", data_dir=archive, val_size=0)  # the archive itself as --data-dir
    assert torch.equal(from_folder.train.x, from_archive.train.x)
    assert from_folder.val is None and len(from_folder.train) == 5 * N_PER_BATCH


def test_cifar100_fine_and_coarse_labels(tmp_path):
    write_tar(tmp_path / "cifar-100-python.tar.gz", cifar_files("cifar100"))
    fine = load_dataset("cifar100", data_dir=tmp_path, val_size=6)
    coarse = load_dataset("cifar100", data_dir=tmp_path, val_size=6, labels="coarse")
    assert fine.num_classes == 100 and coarse.num_classes == 20 and coarse.classes[0] == "coarse0"
    assert torch.equal(fine.train.y // 5, coarse.train.y) and len(fine.test) == 3 * N_PER_BATCH


def test_member_escaping_its_folder_is_refused(tmp_path):
    evil = tarfile.TarInfo("../escaped.txt")
    evil.size = 4
    write_tar(tmp_path / "cifar-10-python.tar.gz", cifar_files("cifar10"), extra=[(evil, b"evil")])
    with pytest.raises(DataError, match="outside its folder"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_absolute_member_and_link_out_are_refused(tmp_path):
    absolute = tarfile.TarInfo("/tmp/reslab-absolute-member")
    absolute.size = 1
    (tmp_path / "a").mkdir()
    write_tar(tmp_path / "a" / "cifar-10-python.tar.gz", cifar_files("cifar10"), extra=[(absolute, b"x")])
    with pytest.raises(DataError, match="outside its folder"):
        load_dataset("cifar10", data_dir=tmp_path / "a")
    link = tarfile.TarInfo("cifar-10-batches-py/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    (tmp_path / "b").mkdir()
    write_tar(tmp_path / "b" / "cifar-10-python.tar.gz", cifar_files("cifar10"), extra=[(link, None)])
    with pytest.raises(DataError, match="outside its folder"):
        load_dataset("cifar10", data_dir=tmp_path / "b")


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    files = cifar_files("cifar10")
    files["cifar-10-batches-py/data_batch_3"] = pickle.dumps({b"data": Boom()}, protocol=2)
    write_tar(tmp_path / "cifar-10-python.tar.gz", files)
    with pytest.raises(DataError, match="data_batch_3 is not a readable CIFAR batch"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_truncated_archive_and_wrong_batch_shape(tmp_path):
    path = write_tar(tmp_path / "cifar-10-python.tar.gz", cifar_files("cifar10"))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz is truncated or not a tar archive"):
        load_dataset("cifar10", data_dir=tmp_path)
    files = cifar_files("cifar10")
    bad = pickle.loads(files["cifar-10-batches-py/data_batch_1"], encoding="bytes")
    bad[b"data"] = bad[b"data"][:, :100]
    files["cifar-10-batches-py/data_batch_1"] = pickle.dumps(bad, protocol=2)
    (tmp_path / "c").mkdir()
    write_tar(tmp_path / "c" / "cifar-10-python.tar.gz", files)
    with pytest.raises(DataError, match="N x 3072 uint8"):
        load_dataset("cifar10", data_dir=tmp_path / "c")


def test_missing_cifar_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RESLAB_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataError, match="reslab data fetch cifar100"):
        load_dataset("cifar100")
