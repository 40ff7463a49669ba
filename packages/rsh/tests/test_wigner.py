"""wigner_D: Y(Rx) = D Y(x), orthogonality, homomorphism, e3nn's D."""

import pytest
import rsh
import torch
from hypothesis import given
from hypothesis import strategies as st
from rsh.testing import random_rotation


def _rotation_from_seed(seed: int) -> torch.Tensor:
    return random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@given(seed=st.integers(0, 2**31 - 1), l=st.integers(0, rsh.L_MAX))
@pytest.mark.parametrize("convention", ["standard", "thesis", "e3nn"])
def test_equivariance(convention, seed, l):
    R = _rotation_from_seed(seed)
    x = torch.randn(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    D = rsh.wigner_D(l, R, convention=convention)
    sl = slice(l * l, (l + 1) ** 2)
    lhs = rsh.spherical_harmonics(x @ R.T, l, convention=convention)[:, sl]
    rhs = rsh.spherical_harmonics(x, l, convention=convention)[:, sl] @ D.T
    torch.testing.assert_close(lhs, rhs, atol=1e-11, rtol=0)


def test_orthogonal_and_homomorphism(generator):
    R1, R2 = random_rotation(2, generator=generator)
    for l in [0, 1, 3, 8, 16]:
        D1, D2, D12 = (rsh.wigner_D(l, R) for R in (R1, R2, R1 @ R2))
        eye = torch.eye(2 * l + 1, dtype=torch.float64)
        torch.testing.assert_close(D1 @ D1.T, eye, atol=1e-12, rtol=0)
        torch.testing.assert_close(D12, D1 @ D2, atol=1e-12, rtol=0)
        torch.testing.assert_close(torch.linalg.det(D1), torch.tensor(1.0, dtype=torch.float64))


def test_batched_and_identity(generator):
    R = random_rotation(2, 3, generator=generator)
    D = rsh.wigner_D(2, R)
    assert D.shape == (2, 3, 5, 5)
    torch.testing.assert_close(D[1, 2], rsh.wigner_D(2, R[1, 2]))
    torch.testing.assert_close(
        rsh.wigner_D(4, torch.eye(3, dtype=torch.float64)),
        torch.eye(9, dtype=torch.float64),
        atol=1e-13,
        rtol=0,
    )
    assert rsh.wigner_D(1, R.float()).dtype == torch.float32


def test_e3nn_l1_is_R_and_matches_e3nn(generator):
    o3 = pytest.importorskip("e3nn.o3")
    R = random_rotation(generator=generator)
    torch.testing.assert_close(rsh.wigner_D(1, R, convention="e3nn"), R, atol=1e-13, rtol=0)
    for l in range(5):
        # e3nn computes D through Euler angles in float32 internally: compare at 1e-5.
        want = o3.Irrep(l, 1).D_from_matrix(R)
        torch.testing.assert_close(rsh.wigner_D(l, R, convention="e3nn"), want, atol=1e-5, rtol=0)
