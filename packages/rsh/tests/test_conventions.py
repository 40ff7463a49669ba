"""The three conventions and three normalizations against e3nn, sphericart and each other."""

import math

import pytest
import rsh
import torch
from rsh._reference import reference_sh

BACKENDS = ["torch", "cpp"]

e3nn_o3 = pytest.importorskip("e3nn.o3")


@pytest.mark.parametrize("normalization", ["integral", "component", "norm"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_e3nn_equality(points, normalization, normalize, backend):
    l_max = 12
    ours = rsh.spherical_harmonics(
        points, l_max, normalize=normalize, normalization=normalization, convention="e3nn",
        backend=backend,
    )  # fmt: skip
    ref = e3nn_o3.spherical_harmonics(list(range(l_max + 1)), points, normalize, normalization)
    scale = ref.abs().amax(dim=0).clamp(min=1.0)
    torch.testing.assert_close(ours / scale, ref / scale, atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sphericart_standard(points, backend):
    sct = pytest.importorskip("sphericart.torch")
    l_max = 12
    ref = sct.SphericalHarmonics(l_max)(points)
    ours = rsh.spherical_harmonics(points, l_max, backend=backend)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)


def test_l1_blocks(points):
    u = points / points.norm(dim=-1, keepdim=True)
    c = math.sqrt(3 / (4 * math.pi))
    std = rsh.spherical_harmonics(points, 1)[:, 1:]
    torch.testing.assert_close(std, c * u[:, [1, 2, 0]], atol=1e-14, rtol=0)
    thesis = rsh.spherical_harmonics(points, 1, convention="thesis")[:, 1:]
    torch.testing.assert_close(thesis, -c * u[:, [1, 2, 0]], atol=1e-14, rtol=0)
    e3 = rsh.spherical_harmonics(points, 1, convention="e3nn")[:, 1:]
    torch.testing.assert_close(e3, c * u, atol=1e-14, rtol=0)


def test_thesis_is_signed_standard(points):
    std = rsh.spherical_harmonics(points, 6)
    th = rsh.spherical_harmonics(points, 6, convention="thesis")
    for l in range(7):
        sl = slice(l * l, (l + 1) ** 2)
        torch.testing.assert_close(th[:, sl], (-1) ** l * std[:, sl], atol=0, rtol=0)


@pytest.mark.parametrize("normalization", ["component", "norm"])
def test_normalization_sums(points, normalization):
    y = rsh.spherical_harmonics(points, 8, normalization=normalization)
    for l in range(9):
        s = y[:, l * l : (l + 1) ** 2].pow(2).sum(-1)
        want = 2 * l + 1 if normalization == "component" else 1
        torch.testing.assert_close(s, torch.full_like(s, want), atol=1e-12, rtol=0)


def test_solid_harmonics_scale(points):
    r = points.norm(dim=-1, keepdim=True)
    solid = rsh.spherical_harmonics(points, 8, normalize=False)
    unit = rsh.spherical_harmonics(points, 8)
    ls = torch.tensor([l for l in range(9) for _ in range(2 * l + 1)], dtype=torch.float64)
    torch.testing.assert_close(solid, unit * r**ls, atol=1e-11, rtol=1e-12)


def test_origin():
    x = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    y = rsh.spherical_harmonics(x, 4)
    assert torch.all(y[:, 0] == 0.5 / math.sqrt(math.pi))
    assert torch.all(y[:, 1:] == 0)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.all(g == 0)
    _, dy = rsh.spherical_harmonics_and_gradient(x.detach(), 4)
    assert torch.all(dy == 0)


def test_reference_direct_sphericart(points):
    sct = pytest.importorskip("sphericart.torch")
    torch.testing.assert_close(
        reference_sh(points, 16), sct.SphericalHarmonics(16)(points), atol=1e-11, rtol=0
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("convention", ["standard", "e3nn"])
def test_quadrature_orthonormality(backend, convention):
    from rsh._quadrature import sphere_quadrature

    # Gauss-Legendre x uniform-φ product rule, exact for degree 2 L_MAX polynomials.
    pts, w = sphere_quadrature(2 * rsh.L_MAX)
    torch.testing.assert_close(w.sum(), torch.tensor(4 * math.pi, dtype=torch.float64))
    y = rsh.spherical_harmonics(pts, rsh.L_MAX, convention=convention, backend=backend)
    gram = y.T @ (w[:, None] * y)
    eye = torch.eye(y.shape[-1], dtype=torch.float64)
    torch.testing.assert_close(gram, eye, atol=1e-12, rtol=0)
    yc = rsh.spherical_harmonics(pts, 4, normalization="component", backend=backend)
    torch.testing.assert_close(
        yc.T @ (w[:, None] * yc) / (4 * math.pi), eye[:25, :25], atol=1e-12, rtol=0
    )
