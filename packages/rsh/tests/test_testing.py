"""rsh.testing: rotation sampler, hypothesis strategy, assert_equivariant (which must fail too)."""

import pytest
import rsh
import torch
from hypothesis import given
from rsh.testing import assert_equivariant, random_rotation, rotations


def _check_orthogonal(R, n):
    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-13, rtol=0)


def test_random_rotation(generator):
    R = random_rotation(100, dtype=torch.float64, generator=generator)
    assert R.shape == (100, 3, 3)
    _check_orthogonal(R, 100)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=torch.float64))
    # Haar: E[R] = 0; with 100 samples each entry mean is ~N(0, 1/300).
    assert R.mean(0).abs().max() < 0.3
    assert random_rotation(dtype=torch.float32).shape == (3, 3)
    assert random_rotation(2, 3).shape == (2, 3, 3, 3)
    # Same generator state, same matrices.
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(random_rotation(4, generator=g1), random_rotation(4, generator=g2))


def test_random_rotation_with_parity(generator):
    R = random_rotation(400, generator=generator, parity=True)
    _check_orthogonal(R, 400)
    det = torch.linalg.det(R)
    torch.testing.assert_close(det.abs(), torch.ones(400, dtype=torch.float64))
    assert 120 < int((det < 0).sum()) < 280  # about half improper
    assert random_rotation(parity=True).shape == (3, 3)


@given(rotations())
def test_rotations_strategy_proper(R):
    assert R.shape == (3, 3) and R.dtype == torch.float64
    _check_orthogonal(R[None], 1)
    assert abs(torch.linalg.det(R).item() - 1) < 1e-12


@given(rotations(parity=True, dtype=torch.float32))
def test_rotations_strategy_parity(R):
    assert R.dtype == torch.float32
    assert abs(abs(torch.linalg.det(R).item()) - 1) < 1e-5


@pytest.mark.parametrize("convention", ["standard", "thesis", "e3nn"])
def test_sh_are_equivariant_with_parity(convention, generator):
    # Y_l has parity (-1)^l: "0e+1o+2e+3o" in every convention, under O(3).
    x = torch.randn(10, 3, dtype=torch.float64, generator=generator)

    def fn(v):
        return rsh.spherical_harmonics(v, 3, convention=convention)

    err = assert_equivariant(
        fn, [x], "cartesian_vectors", "0e+1o+2e+3o", convention=convention, generator=generator
    )
    assert 0 <= err < 1e-12


def test_irreps_inputs(generator):
    # A vector in e3nn's basis is "1o"; its norm is "0e"; v * s is "1o"; cross product is "1e".
    v = torch.randn(5, 3, dtype=torch.float64, generator=generator)
    w = torch.randn(5, 3, dtype=torch.float64, generator=generator)
    assert_equivariant(
        lambda a, b, s: (a * s, a.norm(dim=-1, keepdim=True), torch.linalg.cross(a, b)),
        [v, w, 2.0],
        ["1o", rsh.Irreps("1o"), None],
        ["1o", "0e", "1e"],
        convention="e3nn",
        generator=generator,
    )
    # The cross product is a pseudovector: declared "1o" it fails under inversion only.
    with pytest.raises(AssertionError, match="inversion"):
        assert_equivariant(
            torch.linalg.cross, [v, w], ["1o", "1o"], "1o", convention="e3nn", generator=generator
        )
    assert_equivariant(
        torch.linalg.cross, [v, w], ["1o", "1o"], "1o", convention="e3nn", parity=False
    )


def test_cartesian_points_and_translation(generator):
    pos = torch.randn(6, 3, dtype=torch.float64, generator=generator)
    cell = torch.randn(3, 3, dtype=torch.float64, generator=generator)

    def centroid_and_distances(p, c):
        d = (p[:, None] - p[None]).norm(dim=-1)
        return p.mean(0), d, c.sum(0)

    assert_equivariant(
        centroid_and_distances,
        [pos, cell],
        ["cartesian_points", "cartesian_vectors"],
        ["cartesian_points", None, "cartesian_vectors"],
        translation=True,
        generator=generator,
    )

    # Harmonics of absolute positions are rotation- but not translation-equivariant.
    def sh(p):
        return rsh.spherical_harmonics(p, 2)

    assert_equivariant(sh, [pos], "cartesian_points", "0e+1o+2e", generator=generator)
    with pytest.raises(AssertionError, match="translation"):
        assert_equivariant(
            sh, [pos], "cartesian_points", "0e+1o+2e", translation=True, generator=generator
        )


def test_assert_equivariant_fails(generator):
    x = torch.randn(10, 3, dtype=torch.float64, generator=generator)
    with pytest.raises(AssertionError, match="not equivariant under rotation 0"):
        assert_equivariant(lambda v: v**2, [x], "1o", "1o", convention="e3nn", generator=generator)
    with pytest.raises(AssertionError, match="shape"):
        assert_equivariant(lambda v: v[: 1 + int(v[0, 0] > 0)], [x], "1o", "1o", convention="e3nn")
    with pytest.raises(ValueError, match="irreps_in"):
        assert_equivariant(lambda v: v, [x], ["1o", "1o"], "1o")
    with pytest.raises(ValueError, match="dimension"):
        assert_equivariant(lambda v: v, [x], "2e", "2e")
    with pytest.raises(ValueError, match="is empty"):
        assert_equivariant(lambda v: v, [x], "", "1o")
    with pytest.raises(ValueError, match="n_rotations"):
        assert_equivariant(lambda v: v, [x], "1o", "1o", n_rotations=0)
