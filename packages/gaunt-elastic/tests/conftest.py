"""Shared fixtures: a seed and the shared MP data directory (hypothesis profiles: root conftest)."""

from __future__ import annotations

import pytest
import rsh.testing
import torch


@pytest.fixture
def seed() -> int:
    """Fixed seed; also seeds torch's global generator."""
    torch.manual_seed(1234)
    return 1234


@pytest.fixture
def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def rotation(generator: torch.Generator):
    """A callable returning fresh Haar-random proper rotations (``rsh.testing``'s sampler)."""
    return lambda: rsh.testing.random_rotation(dtype=torch.float64, generator=generator)
