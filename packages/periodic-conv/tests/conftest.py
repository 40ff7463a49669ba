import os

import numpy as np
import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def seed() -> int:
    """Fixed seed for numpy and torch so failures reproduce."""
    torch.manual_seed(1234)
    return 1234


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)
