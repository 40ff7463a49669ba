"""Gradients: analytic vs autograd vs finite differences, gradcheck and gradgradcheck."""

import pytest
import rsh
import torch

BACKENDS = ["torch", "cpp"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("convention", ["standard", "e3nn"])
def test_gradient_vs_finite_differences(points, backend, normalize, convention):
    l_max = 8
    x = points[:20]
    kw = {"normalize": normalize, "convention": convention, "backend": backend}
    _, dy = rsh.spherical_harmonics_and_gradient(x, l_max, **kw)
    h = 1e-6
    for i in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[i] = h
        fd = (
            rsh.spherical_harmonics(x + e, l_max, **kw)
            - rsh.spherical_harmonics(x - e, l_max, **kw)
        ) / (2 * h)
        torch.testing.assert_close(dy[:, i], fd, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck(points, backend, normalize):
    x = points[:3].clone().requires_grad_()
    for l_max in (1, 5):

        def f(v, l_max=l_max):
            return rsh.spherical_harmonics(v, l_max, normalize=normalize, backend=backend)

        assert torch.autograd.gradcheck(f, (x,))
        assert torch.autograd.gradgradcheck(f, (x,))

        def g(v, l_max=l_max):
            return rsh.spherical_harmonics_and_gradient(
                v, l_max, normalize=normalize, backend=backend
            )

        assert torch.autograd.gradcheck(g, (x,))
