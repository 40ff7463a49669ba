"""Every bad input raises a clear ValueError / TypeError naming the argument."""

import pytest
import rsh
import torch

X = torch.randn(4, 3, dtype=torch.float64)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"xyz": torch.randn(4, 2)}, ValueError, r"xyz must have shape \[\.\.\., 3\]"),
        ({"xyz": torch.tensor(1.0)}, ValueError, "xyz must have shape"),
        ({"xyz": torch.ones(4, 3, dtype=torch.int64)}, TypeError, "xyz must be a real floating"),
        ({"xyz": torch.ones(4, 3, dtype=torch.bool)}, TypeError, "xyz must be a real floating"),
        ({"xyz": torch.ones(4, 3, dtype=torch.complex128)}, TypeError, "xyz must be a real"),
        ({"xyz": [[1.0, 2.0, 3.0]]}, TypeError, "xyz must be a torch.Tensor"),
        ({"l_max": -1}, ValueError, "l_max must be >= 0, got -1"),
        ({"l_max": rsh.L_MAX + 1}, ValueError, f"<= {rsh.L_MAX}, got {rsh.L_MAX + 1}"),
        ({"l_max": 2.0}, TypeError, "l_max must be an int"),
        ({"l_max": True}, TypeError, "l_max must be an int"),
        ({"convention": "wiki"}, ValueError, "convention must be one of"),
        ({"normalization": "unit"}, ValueError, "normalization must be one of"),
        ({"backend": "numpy"}, ValueError, "backend must be one of"),
        ({"normalize": 1}, TypeError, "normalize must be a bool"),
        ({"backend": "cuda"}, ValueError, "backend='cuda' needs a CUDA tensor"),
    ],
)
@pytest.mark.parametrize("fn", [rsh.spherical_harmonics, rsh.spherical_harmonics_and_gradient])
def test_bad_input(fn, kwargs, exc, match):
    args = {"xyz": X, "l_max": 2, **kwargs}
    xyz, l_max = args.pop("xyz"), args.pop("l_max")
    with pytest.raises(exc, match=match):
        fn(xyz, l_max, **args)


def test_bad_module_args():
    with pytest.raises(ValueError, match="l_max"):
        rsh.SphericalHarmonics(rsh.L_MAX + 1)
    with pytest.raises(ValueError, match="convention"):
        rsh.SphericalHarmonics(2, convention="x")


def test_bad_wigner_args():
    R = torch.eye(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="l must be an int"):
        rsh.wigner_D(1.0, R)
    with pytest.raises(ValueError, match="l must be >= 0"):
        rsh.wigner_D(-1, R)
    with pytest.raises(ValueError, match=r"R must have shape \[\.\.\., 3, 3\]"):
        rsh.wigner_D(1, torch.eye(2))
    with pytest.raises(ValueError, match="convention"):
        rsh.wigner_D(1, R, convention="bad")


@pytest.mark.parametrize(
    "fn",
    [
        lambda l: rsh.spherical_harmonics(X, l),
        lambda l: rsh.spherical_harmonics_and_gradient(X, l),
        lambda l: rsh.SphericalHarmonics(l),
        lambda l: rsh.wigner_D(l, torch.eye(3)),
        lambda l: rsh.Irrep(1, l, 1),
        lambda l: rsh.conventions.degree_sign(l),
        lambda l: rsh.conventions.change_of_basis(l, "standard", "e3nn"),
        lambda l: rsh.sphere_quadrature(l),
    ],
)
def test_same_bad_degree_same_exception(fn):
    # One rule everywhere (rsh.conventions.check_degree).
    for bad, exc in [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]:
        with pytest.raises(exc):
            fn(bad)


def test_empty_and_noncontiguous_and_nan():
    assert rsh.spherical_harmonics(torch.empty(0, 3), 3).shape == (0, 16)
    assert rsh.spherical_harmonics(torch.empty(2, 0, 3), 3).shape == (2, 0, 16)
    y, dy = rsh.spherical_harmonics_and_gradient(torch.empty(0, 3), 3)
    assert y.shape == (0, 16) and dy.shape == (0, 3, 16)
    base = torch.randn(3, 8, dtype=torch.float64)
    nc = base.T  # [8, 3], non-contiguous
    assert not nc.is_contiguous()
    torch.testing.assert_close(
        rsh.spherical_harmonics(nc, 4), rsh.spherical_harmonics(nc.contiguous(), 4)
    )
    x = torch.randn(5, 3, dtype=torch.float64)
    x[2, 1] = float("nan")
    y = rsh.spherical_harmonics(x, 4)
    assert torch.isnan(y[2, 1:]).all()
    assert not torch.isnan(y[[0, 1, 3, 4]]).any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision(dtype):
    x = torch.randn(20, 3, dtype=torch.float64)
    y = rsh.spherical_harmonics(x.to(dtype), 6)
    assert y.dtype == dtype
    ref = rsh.spherical_harmonics(x.to(dtype).double(), 6)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-5}[dtype]
    torch.testing.assert_close(y.double(), ref, atol=tol * 4, rtol=0)
