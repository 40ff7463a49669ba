"""rsh.conventions: the one definition of conventions, degrees and basis changes."""

import numpy as np
import pytest
import rsh
import torch
from rsh import conventions as cv
from rsh.testing import random_rotation


def test_constants():
    assert cv.CONVENTIONS == ("standard", "thesis", "e3nn")
    assert cv.DEFAULT_CONVENTION == "standard"
    x = torch.tensor([1.0, 2.0, 3.0])
    back = x[list(cv.E3NN_PERMUTATION)][list(cv.E3NN_GRADIENT_PERMUTATION)]
    assert torch.equal(back, x)  # inverse permutations


def test_check_convention():
    for c in cv.CONVENTIONS:
        assert cv.check_convention(c) == c
    for bad in ["Standard", "", None, 1]:
        with pytest.raises(ValueError, match=r"convention must be one of \('standard'"):
            cv.check_convention(bad)
    with pytest.raises(ValueError, match="basis must be one of"):
        cv.check_convention("x", "basis")


def test_check_degree():
    assert cv.check_degree(3) == 3
    assert type(cv.check_degree(np.int64(3))) is int
    assert cv.check_degree(np.uint8(5), l_max=5) == 5
    for bad in [True, False, 2.0, "2", None, np.float64(2.0)]:
        with pytest.raises(TypeError, match="l must be an int"):
            cv.check_degree(bad)
    with pytest.raises(ValueError, match="l must be >= 0, got -1"):
        cv.check_degree(-1)
    with pytest.raises(ValueError, match="l_max must satisfy 0 <= l_max <= 4, got 5"):
        cv.check_degree(5, "l_max", l_max=4)


def test_degree_sign_and_points():
    assert [cv.degree_sign(l, "thesis") for l in range(4)] == [1, -1, 1, -1]
    assert [cv.degree_sign(l, "e3nn") for l in range(4)] == [1, 1, 1, 1]
    x = torch.tensor([[1.0, 2.0, 3.0]])
    assert cv.to_standard_points(x, "e3nn").tolist() == [[3.0, 1.0, 2.0]]
    assert cv.to_standard_points(x, "standard") is x


@pytest.mark.parametrize("source", cv.CONVENTIONS)
@pytest.mark.parametrize("target", cv.CONVENTIONS)
def test_change_of_basis(source, target, generator):
    x = torch.randn(20, 3, dtype=torch.float64, generator=generator)
    R = random_rotation(generator=generator)
    for l in range(5):
        sl = slice(l * l, (l + 1) ** 2)
        ys = rsh.spherical_harmonics(x, l, convention=source)[:, sl]
        yt = rsh.spherical_harmonics(x, l, convention=target)[:, sl]
        C = cv.change_of_basis(l, source, target)
        torch.testing.assert_close(yt, ys @ C.T, atol=1e-12, rtol=0)
        # ... and it intertwines the Wigner D matrices.
        Ds, Dt = (rsh.wigner_D(l, R, convention=c) for c in (source, target))
        torch.testing.assert_close(Dt, C @ Ds @ C.T, atol=1e-12, rtol=0)
