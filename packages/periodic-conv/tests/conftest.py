import numpy as np
import pytest
import torch


@pytest.fixture
def seed() -> int:
    """Fixed seed for numpy and torch so failures reproduce."""
    torch.manual_seed(1234)
    return 1234


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run only where a GPU is visible (``nox -s gpu`` checks first)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; run `nox -s gpu` on a GPU machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
