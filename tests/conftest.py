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
