"""Backends agree; the ops pass opcheck, torch.compile(fullgraph=True) and double backward."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import rsh
import torch
from rsh import _ext
from rsh._reference import reference_sh

cpp = pytest.mark.skipif(not _ext.available(), reason="C++ extension did not build")


@cpp
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_backends_agree(points, normalize, dtype):
    x = points.to(dtype)
    for l_max in (0, 1, 5, rsh.L_MAX):
        a = rsh.spherical_harmonics(x, l_max, normalize=normalize, backend="cpp")
        b = rsh.spherical_harmonics(x, l_max, normalize=normalize, backend="torch")
        ref = reference_sh(points, l_max, normalize)
        scale = ref.abs().amax(-1, keepdim=True).clamp(min=1)
        tol = 1e-13 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(
            (a.double() - ref) / scale, torch.zeros_like(ref), atol=tol, rtol=0
        )
        torch.testing.assert_close(
            (b.double() - ref) / scale, torch.zeros_like(ref), atol=tol, rtol=0
        )
        ya, da = rsh.spherical_harmonics_and_gradient(x, l_max, normalize=normalize, backend="cpp")
        _, db = rsh.spherical_harmonics_and_gradient(x, l_max, normalize=normalize, backend="torch")
        torch.testing.assert_close(ya, a, atol=0, rtol=0)
        gscale = db.abs().amax((-1, -2), keepdim=True).clamp(min=1)
        torch.testing.assert_close(da / gscale, db / gscale, atol=tol, rtol=0)


def _check_low_l_special_rows(dtype):
    # l_max = 1 has its own SIMD paths (8/4 points per AVX step, 4/2 per SSE2 step, scalar
    # tail): every length 1..19 with origin / NaN / inf rows at several lane positions must
    # match the torch backend, and Y from sh_grad bit for bit.
    gen = torch.Generator().manual_seed(1)
    for n in range(1, 20):
        x = torch.randn(n, 3, generator=gen, dtype=torch.float64).to(dtype)
        if n > 2:
            x[n - 1, 1] = float("nan")
            x[(2 * n) // 3, 0] = float("nan")
        if n > 4:
            x[1, 2] = float("inf")
        zero_rows = sorted({n // 2, n // 3})
        x[zero_rows] = 0.0
        for l_max in (0, 1, 2):
            a = rsh.spherical_harmonics(x, l_max, backend="cpp")
            b = rsh.spherical_harmonics(x, l_max, backend="torch")
            torch.testing.assert_close(a, b, equal_nan=True, atol=1e-6, rtol=1e-6)
            assert torch.equal(a[zero_rows, 1:], torch.zeros_like(a[zero_rows, 1:]))
            ya, _ = rsh.spherical_harmonics_and_gradient(x, l_max, backend="cpp")
            torch.testing.assert_close(ya, a, equal_nan=True, atol=0, rtol=0)


@cpp
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpp_low_l_special_rows_and_tails(dtype):
    _check_low_l_special_rows(dtype)


@cpp
def test_cpp_low_l_sse2_path():
    # The AVX choice is made once per process, so the SSE2 path runs in a child process.
    here = str(Path(__file__).parent)
    code = (
        f"import sys, torch; sys.path.insert(0, {here!r}); import test_backends as t; "
        "t._check_low_l_special_rows(torch.float64); t._check_low_l_special_rows(torch.float32)"
    )
    env = dict(os.environ, RSH_DISABLE_AVX="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_auto_backend_and_module(points):
    want = "cpp" if _ext.available() else "torch"
    from rsh._backends import resolve

    assert resolve("auto", points) == want
    m = rsh.SphericalHarmonics(3, convention="e3nn")
    torch.testing.assert_close(m(points), rsh.spherical_harmonics(points, 3, convention="e3nn"))
    assert "e3nn" in repr(m)


@cpp
@pytest.mark.parametrize("normalize", [True, False])
def test_opcheck(points, normalize):
    x = points[:10].clone().requires_grad_()
    for l_max in (0, 4):
        torch.library.opcheck(torch.ops.rsh.sh.default, (x, l_max, normalize))
        torch.library.opcheck(torch.ops.rsh.sh_grad.default, (x, l_max, normalize))
        g = torch.randn(10, (l_max + 1) ** 2, dtype=x.dtype, requires_grad=True)
        torch.library.opcheck(torch.ops.rsh.sh_vjp.default, (x, g, l_max, normalize))


@cpp
def test_cpp_double_backward(points):
    x = points[:4].clone().requires_grad_()

    def f(v):
        return rsh.spherical_harmonics(v, 4, backend="cpp")

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))
    # forces-style: second derivative through the fused backward
    v = x.detach().clone().requires_grad_()
    (gc,) = torch.autograd.grad(f(v).pow(2).sum(), v, create_graph=True)
    (ggc,) = torch.autograd.grad(gc.pow(2).sum(), v)
    w = x.detach().clone().requires_grad_()
    ft = rsh.spherical_harmonics(w, 4, backend="torch").pow(2).sum()
    (gt,) = torch.autograd.grad(ft, w, create_graph=True)
    (ggt,) = torch.autograd.grad(gt.pow(2).sum(), w)
    torch.testing.assert_close(ggc, ggt)

    def g(v):
        return rsh.spherical_harmonics_and_gradient(v, 4, normalize=False, backend="cpp")

    assert torch.autograd.gradcheck(g, (x,))


@cpp
def test_torch_compile_fullgraph(points):
    def f(v):
        y = rsh.spherical_harmonics(v, 3, backend="cpp", convention="e3nn")
        return (y * y).sum(-1)

    x = points[:8].clone().requires_grad_()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, f(x))
    (g1,) = torch.autograd.grad(out.sum(), x)
    (g2,) = torch.autograd.grad(f(x).sum(), x)
    torch.testing.assert_close(g1, g2)


def test_cuda_error_message():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    x = torch.randn(3, 3)
    with pytest.raises(ValueError, match="backend='cuda' needs a CUDA tensor"):
        rsh.spherical_harmonics(x, 2, backend="cuda")


@pytest.mark.cuda
def test_cuda_matches_cpu(points):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (run with `nox -s gpu` on a GPU machine)")
    for dtype in (torch.float64, torch.float32):
        x = points.to(dtype)
        for normalize in (True, False):
            a = rsh.spherical_harmonics(x.cuda(), rsh.L_MAX, normalize=normalize).cpu()
            b = rsh.spherical_harmonics(x, rsh.L_MAX, normalize=normalize, backend="torch")
            torch.testing.assert_close(
                a, b, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=1e-5
            )
            _, da = rsh.spherical_harmonics_and_gradient(x.cuda(), 6, normalize=normalize)
            _, db = rsh.spherical_harmonics_and_gradient(x, 6, normalize=normalize, backend="torch")
            torch.testing.assert_close(da.cpu(), db, atol=1e-4, rtol=1e-5)
        y = x.cuda().requires_grad_()
        (g,) = torch.autograd.grad(rsh.spherical_harmonics(y, 4).sum(), y)
        assert torch.isfinite(g).all()
