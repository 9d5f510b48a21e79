"""What computes fastest on this machine: a run's precision, memory layout, compilation, threads.

Each rule comes from paired measurements, listed in the README's "Performance" section;
the rules live here alone, and the trainer, its evaluation and the probes all ask them.

- ``precision="auto"``: bf16 autocast on a CUDA GPU that supports it. On a CPU, bf16 only
  where oneDNN (which runs the convolutions and matrix multiplies) computes bf16 natively
  -- AVX512-BF16 or AMX, not capped below that by ``ONEDNN_MAX_CPU_ISA`` (capped, bf16 is
  emulated and many times slower) -- and only for a model whose matrix multiplies and
  convolutions average ``BF16_MIN_FLOPS_PER_OP`` per call at the batch size: below that,
  autocast's casts cost more than bf16 saves. ATen's own vectorization level
  (``ATEN_CPU_CAPABILITY``) does not decide: oneDNN's does.
- ``torch.compile``: on a CUDA GPU, for runs of at least ``COMPILE_MIN_STEPS_CUDA`` steps,
  with ``mode="reduce-overhead"`` (CUDA graphs: small nets are bound by kernel launches
  there). Not on a CPU by default: there the compile time is repaid after more steps than a
  CPU-sized run takes (``reslab bench`` measures the break-even). Deterministic runs are not
  compiled (the kernels it generates may reduce in another order).
- threads (``idle_core_threads``, for the CLI's computing commands): one per core that
  other work leaves idle. Threads beyond that make every operation wait for the one the OS
  preempted; on an idle machine this is every core, torch's default.
- channels-last: for a net with 2-D convolutions on images whose first convolution's
  output (height x width x channels per image) holds at least ``CHANNELS_LAST_MIN_ELEMENTS``
  values; below that oneDNN's channels-last kernels gain nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..benchmark import FlopCount
from ..environment import idle_cores, onednn_isa_cap

BF16_MIN_FLOPS_PER_OP = 4e6  # between the largest measured slower in bf16 and the smallest faster
COMPILE_MIN_STEPS_CUDA = 2000  # not measured (no GPU here): set it by the break-even `reslab bench` reports on one
CHANNELS_LAST_MIN_ELEMENTS = 512  # between the largest measured tie (7x7x4) and the smallest gain (7x7x16)
# oneDNN ISA caps that still include native bf16 (oneDNN's names, as ONEDNN_MAX_CPU_ISA takes them)
_BF16_ISAS = (
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
    "ALL",
    "DEFAULT",
)


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN computes bf16 natively: AVX512-BF16 or AMX, no lower ISA cap, oneDNN present."""
    try:
        flags = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except AttributeError:
        return False
    cap = onednn_isa_cap()
    return bool(flags and torch.backends.mkldnn.is_available() and (cap is None or cap in _BF16_ISAS))


def flops_per_op(model: nn.Module, example: torch.Tensor, batch_size: int) -> float:
    """Mean FLOPs per matrix multiply or convolution of a forward at ``batch_size``.

    Counted on ``example`` (one sample, with its batch dimension) in eval mode without
    gradients, so nothing in the model changes and no random number is drawn.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCount() as counted:
            model(example)
    finally:
        model.train(was_training)
    return counted.flops * batch_size / max(counted.calls, 1)


def resolve_precision(
    precision: str,
    device: torch.device,
    model: nn.Module | None = None,
    example: torch.Tensor | None = None,
    batch_size: int = 1,
) -> str:
    """``auto`` -> "bf16" or "fp32" by the rule in the module docstring; other values pass through.

    Without ``model`` and ``example`` the CPU rule looks at the hardware alone.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type != "cpu" or not cpu_has_fast_bf16():
        return "fp32"
    if model is None or example is None:
        return "bf16"
    return "bf16" if flops_per_op(model, example, batch_size) >= BF16_MIN_FLOPS_PER_OP else "fp32"


def use_channels_last(model: nn.Module, sample_shape: tuple[int, ...]) -> bool:
    """Channels-last pays for ``model`` on samples of ``sample_shape`` (C, H, W): the rule above."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if len(sample_shape) != 3 or not convs:
        return False
    first, (height, width) = convs[0], sample_shape[1:]
    values = first.out_channels * (height // first.stride[0]) * (width // first.stride[1])  # padding aside
    return values >= CHANNELS_LAST_MIN_ELEMENTS


def compile_mode(setting: str, device: torch.device, total_steps: int, deterministic: bool) -> str | None:
    """The ``torch.compile`` mode for a run's training step, or None to run it eagerly."""
    if setting == "off" or (setting == "auto" and deterministic):
        return None
    mode = "reduce-overhead" if device.type == "cuda" else "default"
    if setting == "on":
        return mode
    return mode if device.type == "cuda" and total_steps >= COMPILE_MIN_STEPS_CUDA else None


@contextmanager
def idle_core_threads() -> Iterator[int]:
    """Torch's threads set to the idle cores (at least one) unless ``OMP_NUM_THREADS`` says otherwise;
    restored afterwards. Yields the number used."""
    before = torch.get_num_threads()
    idle = idle_cores() if "OMP_NUM_THREADS" not in os.environ else None
    threads = before if idle is None else max(1, min(before, round(idle)))
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
