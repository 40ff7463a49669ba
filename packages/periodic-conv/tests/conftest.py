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
