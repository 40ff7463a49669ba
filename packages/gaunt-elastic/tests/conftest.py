"""gaunt-elastic's fixtures; ``seed``, ``generator``, ``shared_data`` and the hypothesis
profiles are in the root conftest.py."""

from __future__ import annotations

import pytest
import rsh.testing
import torch


@pytest.fixture
def rotation(generator: torch.Generator):
    """A callable returning fresh Haar-random proper rotations (``rsh.testing``'s sampler)."""
    return lambda: rsh.testing.random_rotation(dtype=torch.float64, generator=generator)
