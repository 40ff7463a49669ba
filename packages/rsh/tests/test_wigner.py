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


def test_supported_range_is_enforced_fast():
    # Issue 12 item 4: l = 100 used 6.6 GB and 28 s, l = 300 ran past 60 s.
    import time

    R = torch.eye(3, dtype=torch.float64)
    for l in (100, 300, rsh.WIGNER_L_MAX + 1):
        t = time.perf_counter()
        with pytest.raises(ValueError, match=f"l must satisfy 0 <= l <= {rsh.WIGNER_L_MAX}"):
            rsh.wigner_D(l, R)
        assert time.perf_counter() - t < 0.1
    D = rsh.wigner_D(rsh.WIGNER_L_MAX, R)
    torch.testing.assert_close(D, torch.eye(2 * rsh.WIGNER_L_MAX + 1, dtype=torch.float64))


@pytest.mark.parametrize(
    ("R", "match"),
    [
        # Issue 12 item 12: a shear gave |D D^T - I| = 0.27, zeros gave D = 0.
        (torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), "orthogonal"),
        (torch.zeros(3, 3), "orthogonal"),
        (2 * torch.eye(3), "orthogonal"),
        (torch.full((3, 3), float("nan")), "orthogonal"),
        (
            torch.eye(3)
            .expand(2, 4, 3, 3)
            .clone()
            .index_put_((torch.tensor(1), torch.tensor(2)), torch.zeros(3, 3)),
            r"\(1, 2\)",
        ),
    ],
)
def test_rejects_non_orthogonal(R, match):
    with pytest.raises(ValueError, match=match):
        rsh.wigner_D(2, R.double())
    with pytest.raises(ValueError, match=match):
        rsh.wigner_D(2, R.float())


def test_improper_matrices_act_on_harmonics(generator):
    # Accepted: D(R) maps Y_l(x) to Y_l(R x) for det R = -1 too, i.e. (-1)^l D(-R).
    R = -random_rotation(generator=generator)
    x = torch.randn(8, 3, dtype=torch.float64, generator=generator)
    for l in range(5):
        sl = slice(l * l, (l + 1) ** 2)
        D = rsh.wigner_D(l, R)
        lhs = rsh.spherical_harmonics(x @ R.T, l)[:, sl]
        torch.testing.assert_close(
            lhs, rsh.spherical_harmonics(x, l)[:, sl] @ D.T, atol=1e-12, rtol=0
        )
        torch.testing.assert_close(D, (-1) ** l * rsh.wigner_D(l, -R), atol=1e-13, rtol=0)
    # float32 rotations built in float32 pass (tolerance 1e-3 below float64).
    rsh.wigner_D(3, random_rotation(5, dtype=torch.float32, generator=generator))
