"""Hypothesis profiles, the shared fixtures (``seed``, ``rng``, ``generator``,
``shared_data``) and the CUDA-marker rule for every package's tests, written once.

pytest loads this file for every test run from the repository (``-c pyproject.toml``
makes the repository root the rootdir, and the ``isolated`` sessions copy the tests
under ``.nox/`` inside it). ``HYPOTHESIS_PROFILE`` picks the profile: ``ci``
(derandomised, as ``.ci/run`` sets it) or ``dev`` (the default).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# Repository-wide test policies, also written once:

#: The seed of every test that draws random numbers (tests assert numbers drawn with it).
SEED = 1234


@pytest.fixture
def seed() -> int:
    """:data:`SEED`; also seeds torch's global generator when torch is installed, so
    failures reproduce."""
    try:
        import torch
    except ImportError:  # a torch-free test environment
        pass
    else:
        torch.manual_seed(SEED)
    return SEED


@pytest.fixture
def rng(seed: int):
    """A numpy ``Generator`` seeded with ``seed``."""
    import numpy as np

    return np.random.default_rng(seed)


@pytest.fixture
def generator(seed: int):
    """A fresh ``torch.Generator`` seeded with ``seed`` (tests that need torch only)."""
    import torch

    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``$XTAL_SHARED_DATA``, the real Materials Project files (``.ci/run`` sets it to the
    ``shared/data`` folder beside the repository); tests that need it skip without it."""
    root = os.environ.get("XTAL_SHARED_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip(
            f"real MP data not available (XTAL_SHARED_DATA={root!r}): set "
            "XTAL_SHARED_DATA=/path/to/shared/data (the folder beside the repo) to run this test"
        )
    return Path(root)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` run only where a GPU is visible (``nox -s gpu`` insists on one)."""
    try:
        import torch
    except ImportError:  # a torch-free test environment has no CUDA either
        cuda = False
    else:
        cuda = torch.cuda.is_available()
    if cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; run `nox -s gpu` on a GPU machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
