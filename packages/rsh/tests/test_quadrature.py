"""rsh.sphere_quadrature: exact for every monomial up to its degree (closed-form integrals)."""

import math

import pytest
import rsh
import torch


def _monomial_integral(a: int, b: int, c: int) -> float:
    """∫_{S²} x^a y^b z^c dΩ = 2 Γ((a+1)/2) Γ((b+1)/2) Γ((c+1)/2) / Γ((a+b+c+3)/2), 0 if odd."""
    if a % 2 or b % 2 or c % 2:
        return 0.0
    g = math.lgamma((a + 1) / 2) + math.lgamma((b + 1) / 2) + math.lgamma((c + 1) / 2)
    return 2 * math.exp(g - math.lgamma((a + b + c + 3) / 2))


def _quad(pts, w, a, b, c):
    x, y, z = pts.unbind(-1)
    return float((w * x**a * y**b * z**c).sum())


@pytest.mark.parametrize("degree", [0, 1, 2, 5, 8, 13])
def test_exact_up_to_degree(degree):
    pts, w = rsh.sphere_quadrature(degree)
    assert pts.shape == ((degree // 2 + 1) * (degree + 1), 3) and w.shape == pts.shape[:1]
    torch.testing.assert_close(pts.norm(dim=-1), torch.ones(len(pts), dtype=torch.float64))
    assert abs(float(w.sum()) - 4 * math.pi) < 1e-13
    for a in range(degree + 1):
        for b in range(degree + 1 - a):
            for c in range(degree + 1 - a - b):
                got = _quad(pts, w, a, b, c)
                assert abs(got - _monomial_integral(a, b, c)) < 1e-13, (a, b, c)


@pytest.mark.parametrize("degree", [2, 6])
def test_not_exact_beyond(degree):
    # Tightness: the rule is not a higher-degree rule in disguise (z^(degree+2) fails).
    pts, w = rsh.sphere_quadrature(degree)
    c = degree + 2
    assert abs(_quad(pts, w, 0, 0, c) - _monomial_integral(0, 0, c)) > 1e-6


def test_products_of_harmonics_are_orthonormal():
    pts, w = rsh.sphere_quadrature(2 * 8)
    y = rsh.spherical_harmonics(pts, 8)
    gram = (y * w[:, None]).T @ y
    torch.testing.assert_close(gram, torch.eye(81, dtype=torch.float64), atol=1e-13, rtol=0)


def test_dtype_device_and_fresh_copies():
    p1, w1 = rsh.sphere_quadrature(4, dtype=torch.float32, device="cpu")
    assert p1.dtype == w1.dtype == torch.float32
    p2, _ = rsh.sphere_quadrature(4)
    p2.zero_()
    p3, _ = rsh.sphere_quadrature(4)
    assert p3.abs().sum() > 0  # the cache was not modified through the returned tensor


@pytest.mark.parametrize(
    ("degree", "exc", "match"),
    [
        (-1, ValueError, "degree must be >= 0"),
        (2.0, TypeError, "degree must be an int"),
        (True, TypeError, "degree must be an int"),
        (rsh.MAX_QUADRATURE_DEGREE + 1, ValueError, "degree must satisfy"),
    ],
)
def test_bad_degree(degree, exc, match):
    with pytest.raises(exc, match=match):
        rsh.sphere_quadrature(degree)
