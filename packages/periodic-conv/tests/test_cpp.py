"""The compiled cpp backend: equality with reference/torch, gradients, determinism, opcheck."""

import numpy as np
import periodic_conv as pc
import pytest
import torch
from periodic_conv import _build, _raw

pytestmark = pytest.mark.skipif(
    not _build.cpp_available(), reason="C++ extension did not build (no compiler?)"
)

IR_IN = "2x0e+2x1o+1x2e"
IR_OUT = "2x0e+1x1o+2x2e+1x1e"
L_F = 3


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    cell = 3.0 * (np.eye(3) + 0.3 * rng.uniform(-1, 1, (3, 3)))
    pos = rng.uniform(0, 1, (4, 3)) @ cell
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 3.5, self_interaction=True)
    gen = torch.Generator().manual_seed(1)
    conv = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="e3nn", backend="cpp")
    F = torch.randn(g.num_nodes, pc.Irreps(IR_IN).dim, generator=gen, dtype=torch.float64)
    R = torch.randn(g.num_edges, conv.weight_numel, generator=gen, dtype=torch.float64)
    return g, conv, F, R


def _grads(conv, g, F, R, backend):
    conv.backend = backend
    pos = g.positions.clone().requires_grad_(True)
    F = F.clone().requires_grad_(True)
    R = R.clone().requires_grad_(True)
    hub = pc.DataHub(g.recompute_vectors(pos), L_F, convention="e3nn")
    out = conv(F, hub, R)
    G = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    dF, dR, dpos = torch.autograd.grad(out, [F, R, pos], G)
    return out, dF, dR, dpos


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpp_equals_reference_and_torch(case, dtype):
    g, conv, F, R = case
    if dtype == torch.float32:
        g = g.recompute_vectors(g.positions.float(), g.cell.float())
        F, R = F.float(), R.float()
    ref = _grads(conv, g, F, R, "reference")
    fused = _grads(conv, g, F, R, "torch")
    cpp = _grads(conv, g, F, R, "cpp")
    for a, b, c in zip(ref, fused, cpp):
        if dtype == torch.float64:
            torch.testing.assert_close(c, a, atol=1e-12, rtol=0)
            torch.testing.assert_close(c, b, atol=1e-12, rtol=0)
        else:
            assert float(((c - a).norm() / a.norm()).detach()) < 1e-5


def test_cpp_gradcheck(case):
    g0 = pc.neighbor_list(case[0].positions[:2], case[0].cell[0], 3.0)
    conv = pc.PeriodicConvolution("1x0e+1x1o", "1x0e+1x1o+1x2e", 2, convention="e3nn",
                                  backend="cpp")  # fmt: skip
    gen = torch.Generator().manual_seed(2)
    F = torch.randn(2, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    R = torch.randn(g0.num_edges, conv.weight_numel, generator=gen, dtype=torch.float64,
                    requires_grad=True)  # fmt: skip
    pos = g0.positions.clone().requires_grad_(True)

    def f(F, R, pos):
        return conv(F, pc.DataHub(g0.recompute_vectors(pos), 2, convention="e3nn"), R)

    assert torch.autograd.gradcheck(f, (F, R, pos), atol=1e-8)


def test_cpp_bitwise_reproducible_for_1_and_2_threads(case):
    g, conv, F, R = case
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _grads(conv, g, F, R, "cpp")
        torch.set_num_threads(2)
        two = _grads(conv, g, F, R, "cpp")
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_double_backward_raises_instead_of_silently_wrong(case):
    g, conv, F, R = case
    conv.backend = "cpp"
    F = F.clone().requires_grad_(True)
    out = conv(F, pc.DataHub(g, L_F, convention="e3nn"), R)
    (dF,) = torch.autograd.grad(out.square().sum(), F, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        dF.sum().backward()


def _op_args(case):
    g, conv, F, R = case
    hub = pc.DataHub(g, L_F, convention="e3nn")
    table = conv.table
    scale = hub.edge_scale(table, "unit_variance")
    row_ptr, src_perm, src_ptr = hub.csr()
    paths, kptr, cflat, in_off, out_off = _raw.table_tensors(table, F.dtype, F.device)
    Y = hub.Y[:, : (L_F + 1) ** 2].contiguous()
    return (F.clone().requires_grad_(True), Y.clone().requires_grad_(True),
            R.clone().requires_grad_(True), hub.src, hub.dst, scale, row_ptr, src_perm,
            src_ptr, paths, kptr, cflat, in_off, out_off, table.irreps_out.dim, *table.maxima,
            True)  # fmt: skip


def test_opcheck(case):
    args = _op_args(case)
    torch.library.opcheck(torch.ops.periodic_conv.conv_fwd.default, args)
    F, Y, R, *tensors = args[:14]
    dim, maxima = args[14], args[15:19]
    G = torch.randn(F.shape[0], dim, dtype=F.dtype)
    bwd_args = (G, F.detach(), Y.detach(), R.detach(), *tensors, *maxima, True, True, True)
    torch.library.opcheck(torch.ops.periodic_conv.conv_bwd.default, bwd_args)


def test_torch_compile_fullgraph(case):
    args = _op_args(case)
    F, Y, R = args[:3]
    rest = args[3:]

    def f(F, Y, R):
        return torch.ops.periodic_conv.conv_fwd(F, Y, R, *rest).square().sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    eager = f(F, Y, R)
    got = compiled(F, Y, R)
    torch.testing.assert_close(got, eager, atol=1e-12, rtol=0)
    ge = torch.autograd.grad(eager, [F, Y, R])
    gc = torch.autograd.grad(compiled(F, Y, R), [F, Y, R])
    for a, b in zip(ge, gc):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0)


# Irreps pairs whose largest input and output degrees differ: a readout (l_in > l_out, the
# case that overflowed the CUDA forward's scratch, issue 12 item 18) and an expansion.
MIXED = [
    ("2x0e+2x1o+1x3o", "3x0e", 3),
    ("2x1o+1x3o", "4x0e+1x1o", 3),
    ("2x0e", "1x0e+2x2e+1x3o", 3),
]


def _mixed_case(make_graph, ir_in, ir_out, l_f, device, dtype=torch.float64):
    g = make_graph(4, 3, device)
    conv = pc.PeriodicConvolution(ir_in, ir_out, l_f, convention="e3nn")
    gen = torch.Generator().manual_seed(4)
    F = torch.randn(g.num_nodes, conv.table.irreps_in.dim, generator=gen, dtype=dtype)
    R = torch.randn(g.num_edges, conv.weight_numel, generator=gen, dtype=dtype)
    return g, conv, F.to(device), R.to(device)


def _all_grads(conv, g, F, R, backend, l_f, deterministic=True):
    """Output and gradients with respect to F, R and the positions (through Y)."""
    pos = g.positions.clone().requires_grad_(True)
    F = F.clone().requires_grad_(True)
    R = R.clone().requires_grad_(True)
    hub = pc.DataHub(g.recompute_vectors(pos), l_f, convention="e3nn")
    out = pc.periodic_convolution(
        F, hub, R, conv.irreps_in, conv.irreps_out, l_f, convention="e3nn", backend=backend,
        deterministic=deterministic,
    )  # fmt: skip
    G = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).reshape(out.shape)
    return (out, *torch.autograd.grad(out, [F, R, pos], G))


@pytest.mark.parametrize(("ir_in", "ir_out", "l_f"), MIXED)
def test_cpp_mixed_degrees_equal_reference(skewed_graph, ir_in, ir_out, l_f):
    g, conv, F, R = _mixed_case(skewed_graph, ir_in, ir_out, l_f, "cpu")
    ref = _all_grads(conv, g, F, R, "reference", l_f)
    cpp = _all_grads(conv, g, F, R, "cpp", l_f)
    for a, b in zip(ref, cpp):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0)


def test_op_checks_name_the_tensor(case):
    args = list(_op_args(case))
    op = torch.ops.periodic_conv.conv_fwd
    bad = list(args)
    bad[5] = args[5].float()  # scale
    with pytest.raises(RuntimeError, match="scale must have dtype"):
        op(*bad)
    bad = list(args)
    bad[6] = args[6][:-1]  # row_ptr
    with pytest.raises(RuntimeError, match=r"row_ptr.size\(0\) must be"):
        op(*bad)
    bad = list(args)
    bad[2] = args[2].detach().t().contiguous().t()  # R, non-contiguous
    with pytest.raises(RuntimeError, match="R must be contiguous"):
        op(*bad)
    bad = list(args)
    bad[15] = args[15] + 1  # max_deg
    with pytest.raises(RuntimeError, match="do not match the paths"):
        op(*bad)
    bad = list(args)
    bad[1] = args[1][:, :4].contiguous()  # Y with too few columns for l = 3
    with pytest.raises(RuntimeError, match="Y has 4 columns"):
        op(*bad)


@pytest.mark.cuda
@pytest.mark.parametrize(("ir_in", "ir_out", "l_f"), [(IR_IN, IR_OUT, L_F), *MIXED])
def test_cuda_equals_cpu_forward_and_backward(skewed_graph, ir_in, ir_out, l_f):
    """CUDA forward AND backward (F, R, Y -> positions) against the CPU launcher and the
    reference, for irreps whose largest input and output degrees differ."""
    if not _build.cuda_available():
        pytest.fail("CUDA test selected but no CUDA build/device is available")
    g, conv, F, R = _mixed_case(skewed_graph, ir_in, ir_out, l_f, "cpu")
    ref = _all_grads(conv, g, F, R, "reference", l_f)
    cpu = _all_grads(conv, g, F, R, "cpp", l_f)
    gd, _, Fd, Rd = _mixed_case(skewed_graph, ir_in, ir_out, l_f, "cuda")
    for det in (True, False):
        cuda = _all_grads(conv, gd, Fd, Rd, "cuda", l_f, deterministic=det)
        for name, a, b, c in zip(("out", "dF", "dR", "dpos"), ref, cpu, cuda):
            torch.testing.assert_close(c.cpu(), b, atol=1e-11, rtol=0, msg=name)
            torch.testing.assert_close(c.cpu(), a, atol=1e-11, rtol=0, msg=name)


@pytest.mark.cuda
def test_cuda_op_refuses_cpu_tensors(case):
    """A CPU tensor among CUDA inputs is refused by name (no host pointer reaches a kernel)."""
    if not _build.cuda_available():
        pytest.fail("CUDA test selected but no CUDA build/device is available")
    args = [a.cuda() if isinstance(a, torch.Tensor) else a for a in _op_args(case)]
    args[6] = args[6].cpu()  # row_ptr
    with pytest.raises(RuntimeError, match="row_ptr must be on cuda"):
        torch.ops.periodic_conv.conv_fwd(*args)


def test_disabled_extensions_fall_back_to_torch():
    """XTAL_DISABLE_EXTENSIONS=1 (rsh.extensions' switch): auto -> torch, the neighbour list
    on its numpy path, an explicit cpp backend refused with a clear error; no warning."""
    import os
    import subprocess
    import sys

    code = """
import warnings, torch, periodic_conv as pc
from periodic_conv import _backends, _search
warnings.simplefilter("error")
assert _backends.resolve_backend("auto", torch.device("cpu")) == "torch"
x = torch.zeros(1, 3, dtype=torch.float64)
g = pc.neighbor_list(x, torch.eye(3, dtype=torch.float64) * 3, 3.5)
assert g.num_edges == 6 and _search._compiled_ops() == {}
conv = pc.PeriodicConvolution("1x0e", "1x0e", 0, backend="cpp")
F = torch.ones(1, 1, dtype=torch.float64)
try:
    conv(F, pc.DataHub(g, 0), torch.ones(6, 1, dtype=torch.float64))
except RuntimeError as err:
    assert "backend='cpp' is unavailable" in str(err), err
else:
    raise AssertionError("cpp backend ran with extensions disabled")
"""
    env = {**os.environ, "XTAL_DISABLE_EXTENSIONS": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
