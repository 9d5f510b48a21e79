"""load_weights / create_model(weights=...): own, nested, prefixed, foreign, mismatched, ambiguous, pickled."""

import argparse

import pytest
import torch
from model_styles import CifarResNet, randomize_norms

import reslab
from reslab.models import WeightsError, load_weights
from reslab.train.checkpoint import save_torch


def _trained_like(name="resnet20", **options):
    """A net whose every tensor differs from a fresh one (as a trained net's would)."""
    net = randomize_norms(reslab.create_model(name, **options))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return net


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_own_model_pt(tmp_path):
    source = _trained_like()
    save_torch(tmp_path / "model.pt", source.state_dict())
    loaded = reslab.create_model("resnet20", weights=tmp_path / "model.pt")
    assert _same_state(loaded, source)


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_nested_and_prefixed(tmp_path, key):
    source = _trained_like()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}  # DataParallel's names
    torch.save({"epoch": 7, key: state}, tmp_path / "ckpt.pth")
    net = reslab.create_model("resnet20")
    report = load_weights(net, tmp_path / "ckpt.pth")
    assert (report.matched_by, report.stripped_prefix) == ("name", "module.")
    assert _same_state(net, source)


def test_the_same_architecture_from_another_codebase_matches_by_order(tmp_path):
    """A ResNet-20 written in the common CIFAR code style (other names, same order and shapes)."""
    foreign = randomize_norms(CifarResNet(3, "A", (16, 32, 64))).eval()
    torch.save({"state_dict": foreign.state_dict()}, tmp_path / "resnet20.th")
    net = reslab.create_model("resnet20")
    report = load_weights(net, tmp_path / "resnet20.th")
    assert report.matched_by == "order" and report.tensors == 97
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), foreign(x), atol=1e-5)


def test_shapes_that_differ_are_refused_and_nothing_changes(tmp_path):
    save_torch(tmp_path / "resnet32.pt", _trained_like("resnet32").state_dict())
    net = reslab.create_model("resnet20")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(
        WeightsError,
        match="does not fit this net: 157 tensors in the file, 97 in the net; .* first to differ is blocks.3",
    ):
        load_weights(net, tmp_path / "resnet32.pt")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    state = net.state_dict()
    state["head.2.weight"] = torch.zeros(3, 64)
    save_torch(tmp_path / "narrow.pt", state)
    with pytest.raises(WeightsError, match=r"head.2.weight has shape \[3, 64\] in the file but \[10, 64\]"):
        load_weights(net, tmp_path / "narrow.pt")


def test_an_ambiguous_order_is_refused(tmp_path):
    entries = list(_trained_like().state_dict().items())[::-1]  # the right shapes, in another order
    save_torch(tmp_path / "reversed.pt", {f"other.{i}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(entries)})
    with pytest.raises(WeightsError, match="ambiguous"):
        load_weights(reslab.create_model("resnet20"), tmp_path / "reversed.pt")


def test_pickled_files_need_the_flag(tmp_path):
    source = _trained_like()
    torch.save({"args": argparse.Namespace(lr=0.1), "state_dict": source.state_dict()}, tmp_path / "pickled.pt")
    net = reslab.create_model("resnet20")
    with pytest.raises(
        WeightsError, match=r"unpickling can run code .* allow_pickle=True \(command line: --allow-pickle\)"
    ):
        load_weights(net, tmp_path / "pickled.pt")
    load_weights(net, tmp_path / "pickled.pt", allow_pickle=True)
    assert _same_state(net, source)


def test_unreadable_files_and_non_finite_weights(tmp_path):
    net = reslab.create_model("resnet20")
    with pytest.raises(WeightsError, match="no weights file"):
        load_weights(net, tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable PyTorch file"):
        load_weights(net, tmp_path / "junk.pt")
    save_torch(tmp_path / "epoch.pt", {"epoch": 3, "lr": 0.1})
    with pytest.raises(WeightsError, match="no state_dict .* epoch, lr"):
        load_weights(net, tmp_path / "epoch.pt")
    state = _trained_like().state_dict()
    state["head.2.weight"] = torch.full_like(state["head.2.weight"], float("nan"))
    save_torch(tmp_path / "nan.pt", state)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(WeightsError, match="not finite"):
        load_weights(net, tmp_path / "nan.pt")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
