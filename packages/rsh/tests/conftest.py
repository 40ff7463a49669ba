"""rsh's fixtures; ``seed``, ``generator`` and the hypothesis profiles are in the root
conftest.py."""

import pytest
import torch


@pytest.fixture
def points(generator: torch.Generator) -> torch.Tensor:
    """Random float64 points of various radii, plus points on the axes."""
    x = torch.randn(64, 3, dtype=torch.float64, generator=generator)
    x = x * torch.rand(64, 1, dtype=torch.float64, generator=generator).mul(3).add(0.1)
    axes = torch.tensor([[0, 0, 1.0], [0, 0, -2.0], [1.5, 0, 0], [0, -0.5, 0]], dtype=torch.float64)
    return torch.cat([x, axes])
