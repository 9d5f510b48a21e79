"""Datasets and loaders: synthetic tasks, splits, IDX files (good, corrupt, truncated), batches."""

import gzip
import struct

import pytest
import torch
import torch.nn.functional as F

from reslab.data import IGNORE, Augment, BatchLoader, Split, eval_batches, fashion, grid_1d, load_dataset
from reslab.data.base import hold_out
from reslab.errors import ConfigError, DataError

# --- synthetic tasks -------------------------------------------------------------------


def test_synthetic_data_is_a_function_of_the_seed():
    a = load_dataset("reversal", data_seed=3, train_size=64, val_size=8, test_size=8)
    b = load_dataset("reversal", data_seed=3, train_size=64, val_size=8, test_size=8)
    c = load_dataset("reversal", data_seed=4, train_size=64, val_size=8, test_size=8)
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x, c.train.x)
    # a different training size leaves the test and validation data unchanged
    d = load_dataset("reversal", data_seed=3, train_size=128, val_size=8, test_size=8)
    assert torch.equal(a.test.x, d.test.x) and torch.equal(a.val.x, d.val.x)


def test_token_task_targets():
    rev = load_dataset("reversal", train_size=32, val_size=0, test_size=0).train
    assert torch.equal(rev.y, rev.x.flip(1))
    srt = load_dataset("sorting", train_size=32, val_size=0, test_size=0).train
    assert torch.equal(srt.y, srt.x.sort(1).values)
    rec = load_dataset("recall", train_size=200, val_size=0, test_size=0, seq_len=11, vocab=12).train
    assert (rec.y[:, :-1] == IGNORE).all()
    for x, y in zip(rec.x, rec.y):
        keys, values, query = x[0:10:2].tolist(), x[1:10:2].tolist(), int(x[-1])
        assert len(set(keys)) == len(keys) and all(k < 6 for k in keys) and all(v >= 6 for v in values)
        assert int(y[-1]) == values[keys.index(query)]


def test_adding_problem_and_identity():
    add = load_dataset("adding", train_size=100, val_size=0, test_size=0, seq_len=20).train
    assert add.x.shape == (100, 20, 2) and add.y.shape == (100, 1)
    marks = add.x[:, :, 1]
    assert (marks.sum(1) == 2).all() and (marks[:, :10].sum(1) == 1).all()
    assert torch.allclose((add.x[:, :, 0] * marks).sum(1, keepdim=True), add.y)
    ident = load_dataset("identity", train_size=10, val_size=2, test_size=2, dim=3)
    assert torch.equal(ident.train.x, ident.train.y) and ident.model_inputs()["num_classes"] == 3


def test_grid_and_bad_options():
    g = grid_1d()
    assert g.shape == (256, 1) and g[0, 0] == -2 and g[-1, 0] == 2
    with pytest.raises(ConfigError):
        load_dataset("recall", seq_len=40, vocab=8)  # more pairs than distinct keys
    with pytest.raises(ConfigError):
        load_dataset("adding", nonsense=1)
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("mnist-ish")


def test_model_inputs_follow_the_data():
    img = load_dataset("synthetic-images", channels=3, size=12, train_size=20, val_size=4, test_size=4)
    inputs = img.model_inputs()
    assert inputs["in_channels"] == 3 and inputs["image_size"] == 12 and inputs["input_shape"] == (3, 12, 12)
    tok = load_dataset("sorting", vocab=10, seq_len=7, train_size=8, val_size=0, test_size=0).model_inputs()
    assert tok["vocab_size"] == 10 and tok["seq_len"] == 7 and tok["num_classes"] == 10
    seq = load_dataset("adding", seq_len=9, train_size=8, val_size=0, test_size=0).model_inputs()
    assert seq["input_size"] == 2 and seq["seq_len"] == 9 and seq["num_classes"] == 1


# --- splits ----------------------------------------------------------------------------


def test_hold_out_is_disjoint_nested_and_independent_of_the_training_seed():
    split = Split(torch.arange(100).view(100, 1), torch.arange(100))
    train, val = hold_out(split, 10, None, split_seed=0, name="t")
    assert len(train) == 90 and len(val) == 10
    assert set(train.y.tolist()).isdisjoint(val.y.tolist())
    small, val2 = hold_out(split, 10, 30, split_seed=0, name="t")
    assert torch.equal(val.y, val2.y) and set(small.y.tolist()) <= set(train.y.tolist())
    _, other = hold_out(split, 10, None, split_seed=1, name="t")
    assert not torch.equal(val.y, other.y)
    with pytest.raises(ConfigError):
        hold_out(split, 10, 91, split_seed=0, name="t")


# --- IDX files ---------------------------------------------------------------------------


def write_idx(folder, name, array, gz=True, magic=None):
    if array.dim() == 3:
        header = struct.pack(">IIII", magic or 2051, *array.shape)
    else:
        header = struct.pack(">II", magic or 2049, len(array))
    raw = header + array.to(torch.uint8).numpy().tobytes()
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def tiny_fashion(folder, n_train=50, n_test=20, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder, f"{split}-images-idx3-ubyte", torch.randint(256, (n, 28, 28), generator=g), gz)
        write_idx(folder, f"{split}-labels-idx1-ubyte", torch.arange(n) % 10, gz)
    return folder


def test_idx_files_of_your_own_load_with_verify_off(tmp_path):
    tiny_fashion(tmp_path / "fm", gz=False)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "fm", val_size=10, verify=False)
    assert ds.train.x.shape == (40, 1, 28, 28) and ds.train.x.dtype == torch.uint8
    assert len(ds.val) == 10 and len(ds.test) == 20 and ds.source == str(tmp_path / "fm")
    assert sorted(torch.cat([ds.train.y, ds.val.y]).tolist()) == sorted((torch.arange(50) % 10).tolist())


def test_idx_files_that_are_not_the_official_ones_are_refused(tmp_path):
    tiny_fashion(tmp_path / "fm")
    with pytest.raises(DataError, match="does not match the official Fashion-MNIST"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "fm")


def test_image_size_averages_pixels_and_test_size_takes_the_first_images(tmp_path):
    tiny_fashion(tmp_path / "fm", gz=False)
    full = load_dataset("fashion-mnist", data_dir=tmp_path / "fm", val_size=10, verify=False)
    small = load_dataset(
        "fashion-mnist", data_dir=tmp_path / "fm", val_size=10, verify=False, image_size=14, test_size=5
    )
    assert small.shape == (1, 14, 14) and small.train.x.dtype == torch.uint8 and len(small.test) == 5
    block = full.test.x[0, 0, :2, :2].float().mean()  # the top-left 2x2 block, averaged and rounded
    assert small.test.x[0, 0, 0, 0] == torch.round(block).to(torch.uint8)
    assert torch.equal(small.test.y, full.test.y[:5]) and torch.equal(small.train.y, full.train.y)
    assert small.model_inputs()["image_size"] == 14
    for bad in ({"image_size": 13}, {"test_size": 0}, {"test_size": 21}):
        with pytest.raises(ConfigError):
            load_dataset("fashion-mnist", data_dir=tmp_path / "fm", val_size=10, verify=False, **bad)


def test_truncated_gzip_names_the_file_and_the_fix(tmp_path):
    folder = tiny_fashion(tmp_path / "fm")
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is truncated or corrupt.*reslab data fetch"):
        load_dataset("fashion-mnist", data_dir=folder, verify=False)


def test_truncated_idx_payload_and_wrong_magic(tmp_path):
    folder = tiny_fashion(tmp_path / "fm", gz=False)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-28])  # a whole image short of what the header says
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is truncated \("):
        load_dataset("fashion-mnist", data_dir=folder, verify=False)
    folder2 = tiny_fashion(tmp_path / "fm2", gz=False)
    write_idx(folder2, "train-labels-idx1-ubyte", torch.arange(50) % 10, gz=False, magic=2051)
    with pytest.raises(DataError, match="not an IDX labels file"):
        load_dataset("fashion-mnist", data_dir=folder2, verify=False)


def test_lookup_order_data_dir_before_environment(tmp_path, monkeypatch):
    tiny_fashion(tmp_path / "env" / "fashion-mnist", n_train=30)
    tiny_fashion(tmp_path / "given", n_train=40)
    monkeypatch.setenv("RESLAB_DATA", str(tmp_path / "env"))
    assert fashion.locate(tmp_path / "given") == tmp_path / "given"
    assert fashion.locate(None) == tmp_path / "env" / "fashion-mnist"
    assert fashion.locate(tmp_path / "empty") == tmp_path / "env" / "fashion-mnist"


@pytest.mark.skipif(fashion.locate() is None, reason="Fashion-MNIST is not installed (reslab data fetch fashion-mnist)")
def test_real_fashion_mnist_is_verified_and_split_55k_5k():
    ds = load_dataset("fashion-mnist")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (55000, 5000, 10000)
    assert ds.shape == (1, 28, 28) and ds.num_classes == 10 and ds.classes[9] == "Ankle boot"
    assert abs(ds.mean[0] - 0.2860) < 0.002 and abs(ds.std[0] - 0.3530) < 0.002
    assert torch.bincount(ds.test.y).tolist() == [1000] * 10
    sub = load_dataset("fashion-mnist", train_size=20000)
    assert len(sub.train) == 20000 and torch.equal(sub.val.y, ds.val.y)


# --- the batch loader --------------------------------------------------------------------


def images(n=40, c=2, h=6, w=5):
    return Split(torch.randint(256, (n, c, h, w), dtype=torch.uint8), torch.arange(n))


def test_each_epoch_is_a_seeded_permutation():
    split = images()
    loader = BatchLoader(split, 8, seed=5)
    first = torch.cat([loader.next()[1] for _ in range(5)])
    second = torch.cat([loader.next()[1] for _ in range(5)])
    assert sorted(first.tolist()) == list(range(40)) and sorted(second.tolist()) == list(range(40))
    assert not torch.equal(first, second)
    again = BatchLoader(split, 8, seed=5)
    assert torch.equal(torch.cat([again.next()[1] for _ in range(5)]), first)
    assert not torch.equal(torch.cat([BatchLoader(split, 8, seed=6).next()[1] for _ in range(5)]), first)


def test_restored_position_gives_the_same_batches():
    split = images(37)
    a = BatchLoader(split, 8, seed=1, augment=Augment(2, True))
    for _ in range(6):  # into the second epoch (4 batches per epoch, last partial dropped)
        a.next()
    state = a.state_dict()
    assert (state["epoch"], state["batch"]) == (1, 2)
    expected = [a.next() for _ in range(7)]
    b = BatchLoader(split, 8, seed=1, augment=Augment(2, True))
    b.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(expected, [b.next() for _ in range(7)]):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    with pytest.raises(ConfigError):
        BatchLoader(split, 4, seed=1).load_state_dict(state)


def test_augmentation_equals_pad_crop_flip_done_one_image_at_a_time():
    split = images(16)
    loader = BatchLoader(split, 16, seed=3, augment=Augment(2, True), mean=(0.0, 0.0), std=(1 / 255, 1 / 255))
    loader._plan()
    order, dx, dy, flip = loader._order, loader._dx, loader._dy, loader._flip
    x, _ = loader.next()
    for i in range(16):
        img = F.pad(split.x[order[i]], (2, 2, 2, 2))[:, dy[i] : dy[i] + 6, dx[i] : dx[i] + 5]
        if flip[i]:
            img = img.flip(2)
        assert torch.equal(x[i], img.float()), i
    assert 0 < flip.sum() < 16 and dx.max() <= 4


def test_normalization_and_channels_last():
    split = images(64, c=3, h=8, w=8)
    mean = tuple(split.x[:, c].double().mean().item() / 255 for c in range(3))
    std = tuple(split.x[:, c].double().std().item() / 255 for c in range(3))
    loader = BatchLoader(split, 64, seed=0, mean=mean, std=std, channels_last=True)
    x, _ = loader.next()
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std((0, 2, 3)), torch.ones(3), atol=1e-3)
    ev = torch.cat([b for b, _ in eval_batches(split, 10, mean=mean, std=std)])
    reference = (split.x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(ev, reference, atol=1e-5)


def test_loader_refuses_what_cannot_work():
    with pytest.raises(ConfigError, match="larger than the training set"):
        BatchLoader(images(10), 16)
    tokens = Split(torch.zeros(10, 4, dtype=torch.long), torch.zeros(10, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="image data only"):
        BatchLoader(tokens, 2, augment=Augment(0, True))
    x, _ = BatchLoader(tokens, 5).next()
    assert x.dtype == torch.long
