"""R given as RadialFactors(hidden, weight): same results as R = hidden @ weight.T, R not saved,
in both contraction orders (R per edge chunk, or the weight matrix per atom first)."""

import periodic_conv as pc
import pytest
import torch
from periodic_conv import _build

IR_IN = "2x0e+2x1o+1x2e"
IR_OUT = "2x0e+1x1o+2x2e+1x1e"
L_F = 3
H = 5


@pytest.fixture
def case(skewed_graph):
    """``make(dtype, device)`` -> (graph, conv, F, hidden, weight)."""

    def make(dtype=torch.float64, device="cpu"):
        g = skewed_graph(4, 7, device)
        conv = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="e3nn")
        gen = torch.Generator().manual_seed(8)
        F = torch.randn(g.num_nodes, conv.table.irreps_in.dim, generator=gen, dtype=dtype)
        h = torch.randn(g.num_edges, H, generator=gen, dtype=dtype)
        w = torch.randn(conv.weight_numel, H, generator=gen, dtype=dtype)
        return g, conv, F.to(device), h.to(device), w.to(device)

    return make


def _run(g, conv, F, h, w, backend, factored, chunk=None, order="edges"):
    """Output and gradients with respect to F, hidden, weight and the positions (through Y)."""
    pos = g.positions.clone().requires_grad_(True)
    F, h, w = (t.clone().requires_grad_(True) for t in (F, h, w))
    hub = pc.DataHub(g.recompute_vectors(pos), L_F, convention="e3nn")
    R = pc.RadialFactors(h, w) if factored else h @ w.T
    out = pc.periodic_convolution(F, hub, R, conv.irreps_in, conv.irreps_out, L_F,
                                  convention="e3nn", backend=backend, chunk=chunk,
                                  order=order)  # fmt: skip
    G = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).reshape(out.shape)
    return (out, *torch.autograd.grad(out, [F, h, w, pos], G))


def _factored_conv_of(case, **kwargs):
    """(f, inputs): the convolution with R as factors as a function f(F, hidden, weight,
    positions) of leaf tensors ``inputs``, for gradcheck; ``kwargs`` go to the convolution."""
    g, _, F, h, w = case()
    inputs = tuple(t.clone().requires_grad_(True) for t in (F, h, w, g.positions))

    def f(F, h, w, pos):
        hub = pc.DataHub(g.recompute_vectors(pos), L_F, convention="e3nn")
        return pc.periodic_convolution(F, hub, pc.RadialFactors(h, w), IR_IN, IR_OUT, L_F,
                                       convention="e3nn", **kwargs)  # fmt: skip

    return f, inputs


def _backends():
    names = ["reference", "torch"]
    return names + (["cpp"] if _build.cpp_available() else [])


@pytest.mark.parametrize("chunk", [None, 1, 7])
@pytest.mark.parametrize("backend", _backends())
def test_factors_equal_materialised_R(case, backend, chunk):
    """Also in chunks of 1 and 7 edges: ranges that split a centre's edges."""
    g, conv, F, h, w = case()
    plain = _run(g, conv, F, h, w, "reference", factored=False)
    fact = _run(g, conv, F, h, w, backend, factored=True, chunk=chunk)
    for name, a, b in zip(("out", "dF", "dhidden", "dweight", "dpos"), plain, fact):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0, msg=name)


def _graph_with_isolated_atom() -> pc.Graph:
    """Four atoms within 2 Å of each other and one 6 Å away, r_cut 3 Å, no self edges."""
    pos = torch.tensor([[1.0, 1, 1], [2.2, 1.3, 1], [1.4, 2.5, 1.2], [1.1, 1.2, 2.6], [7, 7, 7]],
                       dtype=torch.float64)  # fmt: skip
    return pc.neighbor_list(pos, 12.0 * torch.eye(3, dtype=torch.float64), 3.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nodes_first_equals_materialised_R(case, dtype):
    """The per-atom order: a table with l_in up to 2 ("auto" would not pick it there), and a
    graph with an isolated atom (zero output and gradient)."""
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    _, conv, *_ = case()
    gen = torch.Generator().manual_seed(3)
    for g in (case()[0], _graph_with_isolated_atom()):
        F = torch.randn(g.num_nodes, conv.table.irreps_in.dim, generator=gen, dtype=dtype)
        h = torch.randn(g.num_edges, H, generator=gen, dtype=dtype)
        w = torch.randn(conv.weight_numel, H, generator=gen, dtype=dtype)
        g = g if dtype == torch.float64 else pc.Graph(**{
            k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
            for k, v in g.__dict__.items()})  # fmt: skip
        plain = _run(g, conv, F, h, w, "reference", factored=False)
        nodes = _run(g, conv, F, h, w, "torch", factored=True, order="nodes")
        for name, a, b in zip(("out", "dF", "dhidden", "dweight", "dpos"), plain, nodes):
            torch.testing.assert_close(b, a, atol=tol, rtol=tol, msg=name)
    assert g.counts[-1] == 0 and plain[0][-1].abs().max() == 0 == nodes[0][-1].abs().max()


def test_nodes_first_gradcheck_and_double_backward(case):
    """Finite differences of the per-atom order, first and second derivatives (plain torch
    ops: double backward works, as training on forces needs)."""
    f, inputs = _factored_conv_of(case, order="nodes")
    assert torch.autograd.gradcheck(f, inputs, atol=1e-8)
    assert torch.autograd.gradgradcheck(f, inputs, atol=1e-7)


def test_auto_order_takes_nodes_first_for_scalar_inputs_on_cpu(case, monkeypatch):
    """ "auto": the per-atom order on CPU where every input block is a scalar (xtalnet's first
    layer), R per edge chunk elsewhere."""
    import periodic_conv._conv as conv_module

    calls = []
    real = conv_module.conv_nodes_first
    monkeypatch.setattr(conv_module, "conv_nodes_first", lambda *a: calls.append(1) or real(*a))
    g = case()[0]
    hub = pc.DataHub(g, 2, convention="e3nn")
    for irreps_in, expect in (("3x0e+2x0o", True), ("3x0e+1x1o", False)):
        conv = pc.PeriodicConvolution(irreps_in, "2x0e+1x1o+1x2e", 2, convention="e3nn")
        F = torch.randn(g.num_nodes, conv.table.irreps_in.dim, dtype=torch.float64)
        h = torch.randn(g.num_edges, H, dtype=torch.float64)
        w = torch.randn(conv.weight_numel, H, dtype=torch.float64)
        calls.clear()
        out = conv(F, hub, pc.RadialFactors(h, w))
        assert bool(calls) is expect, irreps_in
        conv.order = "edges" if expect else "nodes"
        torch.testing.assert_close(conv(F, hub, pc.RadialFactors(h, w)), out, atol=1e-12, rtol=0)
    if _build.cpp_available():  # an explicit compiled backend keeps its kernels
        conv = pc.PeriodicConvolution("3x0e", "2x0e+1x1o", 2, convention="e3nn", backend="cpp")
        calls.clear()
        F = torch.randn(g.num_nodes, 3, dtype=torch.float64)
        conv(F, hub, pc.RadialFactors(h, torch.randn(conv.weight_numel, H, dtype=torch.float64)))
        assert not calls


def test_nodes_first_trains_after_an_inference_call(skewed_graph):
    """Nothing made under inference_mode (here the float32 couplings) is kept for later calls
    that need gradients."""
    g = skewed_graph(4, 7)
    g = pc.Graph(**{k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                    for k, v in g.__dict__.items()})  # fmt: skip
    conv = pc.PeriodicConvolution("3x0e", "2x0e+1x1o+1x2e", 2, convention="e3nn", order="nodes")
    F, h = torch.randn(g.num_nodes, 3), torch.randn(g.num_edges, H)
    w = torch.randn(conv.weight_numel, H)
    with torch.inference_mode():
        conv(F, pc.DataHub(g, 2, convention="e3nn"), pc.RadialFactors(h, w))
    pos = g.positions.clone().requires_grad_(True)
    hub = pc.DataHub(g.recompute_vectors(pos), 2, convention="e3nn")
    conv(F, hub, pc.RadialFactors(h, w.requires_grad_(True))).square().sum().backward()
    assert pos.grad is not None and w.grad is not None


@pytest.mark.skipif(not _build.cpp_available(), reason="C++ extension did not build")
def test_factors_gradcheck(case):
    """Finite differences of the compiled path in chunks of 5 edges (the torch path and
    other chunk sizes equal it: test above)."""
    f, inputs = _factored_conv_of(case, backend="cpp", chunk=5, order="edges")
    assert torch.autograd.gradcheck(f, inputs, atol=1e-8)


@pytest.mark.parametrize("order", ["edges", "nodes"])
@pytest.mark.parametrize("backend", [b for b in _backends() if b != "reference"])
def test_R_is_not_saved_for_backward(case, backend, order):
    """The point of the factors: nothing of shape [E, weight_numel] waits for the backward."""
    g, conv, F, h, w = case()
    F, h, w = (t.clone().requires_grad_(True) for t in (F, h, w))
    hub = pc.DataHub(g, L_F, convention="e3nn")
    saved = []

    def pack(t):
        saved.append(tuple(t.shape))
        return t

    for factored, expect in ((True, False), (False, True)):
        saved.clear()
        R = pc.RadialFactors(h, w) if factored else h @ w.T
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            conv.backend, conv.order = backend, (order if factored else "auto")
            conv(F, hub, R)
        assert ((g.num_edges, conv.weight_numel) in saved) is expect


def test_factors_double_backward_raises(case):
    g, conv, F, h, w = case()
    F, h, w = (t.clone().requires_grad_(True) for t in (F, h, w))
    hub = pc.DataHub(g, L_F, convention="e3nn")
    conv.backend, conv.order = "torch", "edges"
    out = conv(F, hub, pc.RadialFactors(h, w))
    (dF,) = torch.autograd.grad(out.square().sum(), F, create_graph=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable|differentiate"):
        dF.sum().backward()


def test_bad_factors_raise(case):
    g, conv, F, h, w = case()
    hub = pc.DataHub(g, L_F, convention="e3nn")
    with pytest.raises(ValueError, match=r"order must be one of \('auto', 'edges', 'nodes'\)"):
        pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, order="atoms")
    with pytest.raises(ValueError, match=r"order='nodes' cannot run with backend='reference'"):
        pc.periodic_convolution(F, hub, pc.RadialFactors(h, w), IR_IN, IR_OUT, L_F,
                                convention="e3nn", backend="reference", order="nodes")  # fmt: skip
    with pytest.raises(ValueError, match=r"backend must be one of"):
        pc.periodic_convolution(F, hub, pc.RadialFactors(h, w), IR_IN, IR_OUT, L_F,
                                convention="e3nn", backend="gpu", order="nodes")  # fmt: skip
    with pytest.raises(ValueError, match=r"order='nodes' needs R given as RadialFactors"):
        pc.periodic_convolution(F, hub, h @ w.T, IR_IN, IR_OUT, L_F, convention="e3nn",
                                order="nodes")  # fmt: skip
    with pytest.raises(ValueError, match=r"R.weight must have shape \[weight_numel, H\]"):
        conv(F, hub, pc.RadialFactors(h, w[:, :3]))
    with pytest.raises(ValueError, match=r"R.hidden must have shape \[E, H\]"):
        conv(F, hub, pc.RadialFactors(h[:-1], w))
    with pytest.raises(TypeError, match=r"R\.hidden and R\.weight must share a dtype"):
        conv(F, hub, pc.RadialFactors(h, w.float()))
    with pytest.raises(TypeError, match=r"R\.weight must be a torch\.Tensor"):
        conv(F, hub, pc.RadialFactors(h, w.numpy()))


@pytest.mark.cuda
def test_cuda_factors_equal_cpu(case):
    if not _build.cuda_available():
        pytest.fail("CUDA test selected but no CUDA build/device is available")
    cpu = _run(*case(), "cpp", factored=True)
    gpu = _run(*case(device="cuda"), "cuda", factored=True)
    for name, a, b in zip(("out", "dF", "dhidden", "dweight", "dpos"), cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, atol=1e-11, rtol=0, msg=name)
