"""rsh.testing: rotations, irreps parsing, block D, assert_equivariant (which must fail too)."""

import pytest
import rsh
import torch
from rsh.testing import (
    assert_equivariant,
    irreps_dim,
    irreps_wigner_D,
    parse_irreps,
    random_rotation,
)


def test_random_rotation(generator):
    R = random_rotation(100, dtype=torch.float64, generator=generator)
    assert R.shape == (100, 3, 3)
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-13, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=torch.float64))
    # Haar: E[R] = 0; with 100 samples each entry mean is ~N(0, 1/300).
    assert R.mean(0).abs().max() < 0.3
    assert random_rotation(dtype=torch.float32).shape == (3, 3)


def test_parse_irreps():
    assert parse_irreps("16x0e+8x1o") == [(16, 0, 1), (8, 1, -1)]
    assert parse_irreps(" 2e + 3x3o ") == [(1, 2, 1), (3, 3, -1)]
    assert irreps_dim("16x0e+8x1o+2x2e") == 16 + 24 + 10
    for bad in ["1x", "2xe", "0x", "1y"]:
        with pytest.raises(ValueError, match="irreps"):
            parse_irreps(bad)
    with pytest.raises(TypeError, match="irreps"):
        parse_irreps(3)


def test_irreps_wigner_D(generator):
    R = random_rotation(2, generator=generator)
    D = irreps_wigner_D("2x0e+1o+2x2e", R, convention="e3nn")
    assert D.shape == (2, 15, 15)
    torch.testing.assert_close(D[:, 2:5, 2:5], R, atol=1e-13, rtol=0)
    torch.testing.assert_close(D[:, 5:10, 5:10], rsh.wigner_D(2, R, convention="e3nn"))
    torch.testing.assert_close(D[:, 10:, 10:], D[:, 5:10, 5:10])
    assert D[:, :2, 2:].abs().max() == 0


@pytest.mark.parametrize("convention", ["standard", "e3nn"])
def test_assert_equivariant_passes(convention, generator):
    x = torch.randn(10, 3, dtype=torch.float64, generator=generator)
    irreps_x = "1o"
    if convention == "standard":
        # Cartesian xyz is not the standard l=1 basis (y, z, x): permute first.
        def fn(v):
            return rsh.spherical_harmonics(v[:, [2, 0, 1]], 3, convention=convention)
    else:

        def fn(v):
            return rsh.spherical_harmonics(v, 3, convention=convention)

    v = x[:, [1, 2, 0]] if convention == "standard" else x
    assert_equivariant(fn, [v], irreps_x, "0e+1o+2e+3o", convention=convention, generator=generator)


def test_assert_equivariant_fails(generator):
    x = torch.randn(10, 3, dtype=torch.float64, generator=generator)
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(lambda v: v**2, [x], "1o", "1o", convention="e3nn", generator=generator)
    # Invariant inputs (None) pass through unchanged; tuple outputs.
    assert_equivariant(
        lambda v, s: (v * s, v.norm(dim=-1, keepdim=True)),
        [x, 2.0],
        ["1o", None],
        ["1o", "0e"],
        convention="e3nn",
        generator=generator,
    )
    with pytest.raises(ValueError, match="irreps_in"):
        assert_equivariant(lambda v: v, [x], ["1o", "1o"], "1o")
    with pytest.raises(ValueError, match="dimension"):
        assert_equivariant(lambda v: v, [x], "2e", "2e")
