"""The precision and memory-layout rules (``reslab.train.hardware``)."""

import pytest
import torch

from reslab.models import create_model
from reslab.train import hardware


@pytest.fixture
def native_bf16(monkeypatch):
    """A CPU whose flags say AVX512-BF16, with no ISA cap set."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)


@pytest.mark.parametrize(
    ("cap", "native"),
    [(None, True), ("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("ALL", True)],
)
def test_bf16_is_native_only_where_onednn_may_use_it(native_bf16, monkeypatch, cap, native):
    if cap is not None:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert hardware.cpu_has_fast_bf16() is native


def test_the_old_name_of_the_isa_cap_counts_too(native_bf16, monkeypatch):
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert hardware.cpu_has_fast_bf16() is False


def test_auto_takes_bf16_for_large_operations_and_fp32_for_small_ones(native_bf16):
    cpu = torch.device("cpu")
    resnet = create_model("resnet20", in_channels=1, image_size=28)
    mlp = create_model("mlp_residual", depth=4, width=64, input_shape=(1, 28, 28), num_classes=10)
    image = torch.zeros(1, 1, 28, 28)
    assert hardware.resolve_precision("auto", cpu, resnet, image, batch_size=128) == "bf16"
    assert hardware.resolve_precision("auto", cpu, mlp, image, batch_size=128) == "fp32"
    assert hardware.resolve_precision("fp32", cpu, resnet, image, batch_size=128) == "fp32"


def test_auto_is_fp32_where_bf16_is_emulated(native_bf16, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    resnet = create_model("resnet20", in_channels=1, image_size=28)
    assert hardware.resolve_precision("auto", torch.device("cpu"), resnet, torch.zeros(1, 1, 28, 28), 128) == "fp32"


def test_counting_flops_leaves_the_model_and_the_random_state_alone():
    model = create_model("resnet20", in_channels=1, image_size=14).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 1, 14, 14)
    rng = torch.get_rng_state()
    per_op = hardware.flops_per_op(model, x, batch_size=64)
    assert per_op > 0 and model.training and torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_flops_per_op_grows_with_the_batch():
    model = create_model("resnet20", in_channels=1, image_size=14)
    x = torch.zeros(1, 1, 14, 14)
    assert hardware.flops_per_op(model, x, 128) == pytest.approx(2 * hardware.flops_per_op(model, x, 64))


def test_channels_last_for_conv_nets_on_images_that_are_not_tiny():
    assert hardware.use_channels_last(create_model("resnet20", in_channels=1, image_size=28), (1, 28, 28))
    tiny = create_model("resnet56", in_channels=1, image_size=7, widths=(4, 8, 16))
    assert not hardware.use_channels_last(tiny, (1, 7, 7))
    mlp = create_model("mlp_residual", depth=2, width=16, input_shape=(1, 28, 28), num_classes=10)
    assert not hardware.use_channels_last(mlp, (1, 28, 28))
    assert not hardware.use_channels_last(create_model("resnet20", in_channels=1, image_size=28), (784,))


def test_env_json_records_what_decides_bf16_speed(monkeypatch):
    from reslab import environment

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    facts = environment._cpu_kernels(torch)
    assert facts["onednn_max_cpu_isa"] == "AVX2" and facts["aten_cpu_capability"]
    assert set(facts["cpu_bf16"].split(", ")) <= {"AVX512-BF16", "AMX", "none"}


def test_threads_follow_the_idle_cores_and_are_restored(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    monkeypatch.setattr(hardware, "idle_cores", lambda: 0.2)  # every core busy with other work: one thread
    with hardware.idle_core_threads() as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setattr(hardware, "idle_cores", lambda: 64.0)  # never more than torch would use
    with hardware.idle_core_threads() as threads:
        assert threads == before


def test_an_explicit_thread_count_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(hardware, "idle_cores", lambda: 0.0)
    before = torch.get_num_threads()
    with hardware.idle_core_threads() as threads:
        assert threads == before


def test_idle_cores_reads_the_machine():
    from reslab.environment import idle_cores

    idle = idle_cores(window=0.05)
    assert idle is None or 0.0 <= idle <= (__import__("os").cpu_count() or 1) + 1e-9
