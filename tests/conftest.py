import pytest
import torch

# One thread per test process: on 2 cores shared with other work, torch's default of two
# OpenMP threads stalls badly (measured 5-100x slower on small ops); one thread never does.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same RNG state, so failures reproduce."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def bench_ctx():
    """A quick bench context whose peak is fixed (fp32 100, bf16 200 GFLOP/s): no matmul is timed."""
    from reslab.benchmark import BenchContext, PeakMeter

    class FixedPeak(PeakMeter):
        def sample(self) -> None:
            pass

    return BenchContext(quick=True, peak=FixedPeak(samples={"fp32": [1e11], "bf16": [2e11]}))
