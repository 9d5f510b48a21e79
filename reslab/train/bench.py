"""Speed of the training engine, for ``reslab bench``: throughput and per-step loop overhead.

ResNet-20 on Fashion-MNIST is the reference workload (the quick catalogue's heaviest
kind of run). Where the CPU has no native bf16 (no AVX512-BF16 or AMX), bf16 autocast is
emulated and many times slower than fp32; ``precision=auto`` then picks fp32, and the bf16
measurement is kept short and says so.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ..benchmark import Measurement
from ..data import fashion, load_dataset
from ..models import create_model
from .config import TrainConfig
from .loop import train
from .metrics import read_metrics
from .recipe import Recipe
from .setup import cpu_has_fast_bf16, resolve_device


def _resnet20_fmnist(precision: str, steps: int, folder: Path, data: str = "fashion-mnist") -> dict:
    cfg = TrainConfig(
        "resnet20",
        data,
        recipe=Recipe(steps=steps, batch_size=128, precision=precision, schedule="constant"),
        data_options={"train_size": 20000, "val_size": 0},
        eval_train_size=0,
        test=False,
        log_every=max(1, steps // 5),
    )
    result = train(cfg, folder / f"{precision}-{steps}", resume=False)
    # steady state: leave out the first window, which pays for kernel selection and caches
    lines = read_metrics(folder / f"{precision}-{steps}" / "metrics.jsonl")
    windows = [r["img_per_s"] for r in lines if r["kind"] == "train"]
    windows = [w for w in windows[1:] if w]
    result["steady_img_per_s"] = sum(windows) / len(windows) if windows else result["img_per_s"]
    return result


def _bare_loop_speed(steps: int = 30) -> tuple[float, float]:
    """(train() img/s, bare loop img/s) for a deep narrow MLP, where per-step overhead shows."""
    data_options = {"train_size": 4096, "val_size": 0, "test_size": 0, "dim": 16}
    cfg = TrainConfig(
        "mlp_residual",
        "identity",
        model_options={"depth": 20},
        recipe=Recipe(steps=steps, batch_size=128, precision="fp32", schedule="constant"),
        data_options=data_options,
        eval_train_size=0,
        test=False,
        log_every=10,
    )
    with tempfile.TemporaryDirectory() as d:
        loop_speed = train(cfg, d)["img_per_s"]
    ds = load_dataset("identity", **data_options)
    torch.manual_seed(0)
    model = create_model("mlp_residual", depth=20, input_shape=(16,), num_classes=16).to(resolve_device("auto"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True)
    device = resolve_device("auto")
    x, y = ds.train.x[:128].to(device), ds.train.y[:128].to(device)

    def step() -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(5):
        step().item()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()  # no host sync inside the loop: the fastest a loop can be
    loss.item()
    return loop_speed, steps * 128 / (time.perf_counter() - t0)


def bench(steps: int = 200) -> list[Measurement]:
    """Throughput of ResNet-20 on Fashion-MNIST (fp32 and bf16) and the loop's per-step overhead."""
    out: list[Measurement] = []
    device = resolve_device("auto")
    data = "fashion-mnist" if fashion.locate() is not None else "synthetic-images"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fp32 = _resnet20_fmnist("fp32", steps, folder, data)
        out.append(
            Measurement(
                f"train: ResNet-20 on {data}, fp32, {steps} steps of 128",
                fp32["steady_img_per_s"],
                "img/s",
                detail=f"{device}, {torch.get_num_threads()} threads, channels-last",
            )
        )
        native = device.type == "cuda" or cpu_has_fast_bf16()
        bf16_steps = steps if native else max(5, steps // 20)
        bf16 = _resnet20_fmnist("bf16", bf16_steps, folder, data)
        note = "" if native else "; this CPU has no AVX512-BF16/AMX, so bf16 is emulated and precision=auto uses fp32"
        out.append(
            Measurement(
                f"train: ResNet-20 on {data}, bf16 autocast, {bf16_steps} steps of 128",
                bf16["steady_img_per_s"],
                "img/s",
                detail=f"{device}, channels-last; {bf16['steady_img_per_s'] / fp32['steady_img_per_s']:.2f}x fp32{note}",
            )
        )
    loop, bare = _bare_loop_speed()
    out.append(
        Measurement(
            "train: loop overhead, train() vs a bare step loop (MLP, 20 residual units)",
            loop / bare,
            "x bare",
            target=">= 0.85",
            passed=loop / bare >= 0.85,
            detail=f"{loop:.0f} vs {bare:.0f} img/s",
        )
    )
    return out
