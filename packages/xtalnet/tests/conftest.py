import numpy as np
import pytest


def distorted(atoms, amount: float = 0.05, seed: int = 0):
    """A copy of an ASE Atoms with its positions and cell jiggled (breaks site symmetry)."""
    out = atoms.copy()
    g = np.random.default_rng(seed)
    out.set_cell(out.get_cell()[:] @ (np.eye(3) + amount * g.normal(size=(3, 3))),
                 scale_atoms=True)  # fmt: skip
    out.positions = out.positions + amount * g.normal(size=out.positions.shape)
    return out


@pytest.fixture(scope="session")
def small_structures():
    """Four small real crystals (ASE bulk), distorted so that no tensor is zero by symmetry."""
    from ase.build import bulk

    base = [
        bulk("NaCl", "rocksalt", a=5.64),
        bulk("Si", "diamond", a=5.43),
        bulk("ZnO", "wurtzite", a=3.25, c=5.2),
        bulk("Ti", "hcp", a=2.95, c=4.68),
    ]
    return [distorted(a, 0.04, k) for k, a in enumerate(base)]


@pytest.fixture(scope="session")
def distort():
    """:func:`distorted` as a fixture (test modules cannot import conftest)."""
    return distorted


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    """A tiny float64 NetworkConfig (fields as a dict) for CLI / DDP runs of seconds."""
    return {
        "dtype": "float64",
        "embed_dim": 8,
        "hidden_irreps": "8x0e+2x1o",
        "l_filter_max": 1,
        "num_basis": 4,
        "radial_hidden": 8,
    }
