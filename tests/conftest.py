"""Make the fixture writers in tests/layouts.py importable as ``from layouts import ...``."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module: a bit slower alone, but immune to the many-fold
    OpenMP slowdown when other test processes share the CPU cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
