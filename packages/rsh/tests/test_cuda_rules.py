"""CUDA rules (issue 12 items 19-21). The fallback rule is checked on the CPU; the kernels
themselves in the cuda-marked tests (``nox -s gpu``)."""

import warnings

import pytest
import rsh
import torch
from rsh import _backends, _ext


class _OnCuda:
    """Stands in for a CUDA tensor in ``resolve``, which only reads ``.device``."""

    device = torch.device("cuda", 0)


@pytest.mark.skipif(_ext.cuda_available(), reason="the CUDA kernels are loaded here")
def test_auto_on_cuda_without_kernels_falls_back_with_one_warning(monkeypatch):
    # Item 19: auto used to raise; now it uses torch with ONE warning (as periodic-conv).
    monkeypatch.setattr(_backends, "_warned_cuda_fallback", False)
    with pytest.warns(RuntimeWarning, match="CUDA kernels are not available") as rec:
        assert _backends.resolve("auto", _OnCuda()) == "torch"
    assert len(rec) == 1 and "plain-torch" in str(rec[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _backends.resolve("auto", _OnCuda()) == "torch"  # no second warning
    # An explicit backend='cuda' still raises, naming the reason.
    with pytest.raises(RuntimeError, match="backend='cuda' requested"):
        _backends.resolve("cuda", _OnCuda())


def _cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device (run with `nox -s gpu` on a GPU machine)")
    if not _ext.cuda_available():
        pytest.fail(f"CUDA device but no rsh CUDA kernels: {_ext.cuda_missing_reason()}")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_vjp_every_bound_matches_cpu(dtype):
    # Item 21: the vjp kernel is instantiated per bound 2/4/8/16; every l_max goes through
    # one of them and must give the CPU gradient.
    _cuda()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 3, dtype=dtype, generator=g)
    x[0] = 0.0
    x[1] *= 1e30 if dtype == torch.float32 else 1e200  # the scaled norm on the GPU too
    tol = {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {}
    for l_max in range(rsh.L_MAX + 1):
        w = torch.randn(300, (l_max + 1) ** 2, dtype=dtype, generator=g)
        grads = []
        for device in ("cpu", "cuda"):
            xd = x.to(device).requires_grad_()
            (rsh.spherical_harmonics(xd, l_max) * w.to(device)).sum().backward()
            grads.append(xd.grad.cpu())
        torch.testing.assert_close(grads[1], grads[0], **tol, msg=f"l_max={l_max}")
        torch.testing.assert_close(
            rsh.spherical_harmonics(x.cuda(), l_max).cpu(),
            rsh.spherical_harmonics(x, l_max),
            **tol,
        )


@pytest.mark.cuda
def test_cuda_vjp_checks_every_tensor():
    # Item 20: a CPU grad with a CUDA xyz used to reach the kernel as a host pointer.
    _cuda()
    x = torch.randn(5, 3, device="cuda")
    with pytest.raises(RuntimeError, match="grad must be on the device of xyz"):
        torch.ops.rsh.sh_vjp(x, torch.randn(5, 4), 1, True)
    with pytest.raises(RuntimeError, match="grad must have the dtype of xyz"):
        torch.ops.rsh.sh_vjp(x, torch.randn(5, 4, device="cuda", dtype=torch.float64), 1, True)
    with pytest.raises(RuntimeError, match=r"grad must have shape"):
        torch.ops.rsh.sh_vjp(x, torch.randn(5, 9, device="cuda"), 1, True)
    # Non-contiguous inputs are made contiguous, not misread.
    xt = torch.randn(3, 5, device="cuda").T
    gt = torch.randn(4, 5, device="cuda").T
    torch.testing.assert_close(
        torch.ops.rsh.sh_vjp(xt, gt, 1, True),
        torch.ops.rsh.sh_vjp(xt.contiguous(), gt.contiguous(), 1, True),
    )


@pytest.mark.skipif(not _ext.available(), reason="C++ extension did not build")
def test_cpu_vjp_checks_every_tensor():
    x = torch.randn(5, 3)
    with pytest.raises(RuntimeError, match="grad must have the dtype of xyz"):
        torch.ops.rsh.sh_vjp(x, torch.randn(5, 4, dtype=torch.float64), 1, True)
    with pytest.raises(RuntimeError, match=r"grad must have shape"):
        torch.ops.rsh.sh_vjp(x, torch.randn(5, 9), 1, True)
    xt, gt = torch.randn(3, 5).T, torch.randn(4, 5).T
    torch.testing.assert_close(
        torch.ops.rsh.sh_vjp(xt, gt, 1, True),
        torch.ops.rsh.sh_vjp(xt.contiguous(), gt.contiguous(), 1, True),
    )


@pytest.mark.skipif(not _ext.available(), reason="C++ extension did not build")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpu_vjp_every_bound_matches_torch(dtype):
    # The CPU launcher dispatches on the same bounds: every l_max against the torch backend.
    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, 3, dtype=dtype, generator=g)
    tol = {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {}
    for l_max in range(rsh.L_MAX + 1):
        w = torch.randn(50, (l_max + 1) ** 2, dtype=dtype, generator=g)
        got = torch.ops.rsh.sh_vjp(x, w, l_max, True)
        _, d = rsh.spherical_harmonics_and_gradient(x, l_max, backend="torch")
        torch.testing.assert_close(got, (d * w.unsqueeze(-2)).sum(-1), **tol, msg=str(l_max))
