"""mp-audit's fixtures (structures); ``seed``, ``rng``, ``shared_data`` and the hypothesis
profiles are in the root conftest.py."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure


@pytest.fixture
def two_clusters() -> Structure:
    """Two Na2 dimers 5.5 Å apart in a 30 Å box: disconnected at 5 Å, connected at 6 Å."""
    coords = [[0, 0, 0], [1.5, 0, 0], [7.0, 0, 0], [8.5, 0, 0]]
    return Structure(Lattice.cubic(30.0), ["Na"] * 4, coords, coords_are_cartesian=True)


@pytest.fixture
def chain():
    """Factory: n atoms spaced ``step`` Å along x; periodic ring when ``ring`` else a path."""

    def make(n: int, step: float = 2.0, ring: bool = False) -> Structure:
        length = n * step if ring else n * step + 12.0
        lattice = Lattice.orthorhombic(length, 20.0, 20.0)
        coords = [[k * step, 0, 0] for k in range(n)]
        return Structure(lattice, ["C"] * n, coords, coords_are_cartesian=True)

    return make
