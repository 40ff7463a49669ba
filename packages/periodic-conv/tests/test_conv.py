"""PeriodicConvolution: e3nn equality, backends vs reference, gradients, symmetry, variance."""

import math

import numpy as np
import periodic_conv as pc
import pytest
import torch

IR_IN = "2x0e+2x1o+1x2e"
IR_OUT = "2x0e+1x1o+2x2e+1x1e"
L_F = 3


def conventions():
    """e3nn (wigner_3j from e3nn), standard (the default) and thesis (rsh + gaunt_elastic)."""
    return ["e3nn", "standard", "thesis"]


def structure(n=3, r_cut=3.5, self_interaction=True, seed=0, positions=None):
    rng = np.random.default_rng(seed)
    cell = 3.0 * (np.eye(3) + 0.3 * rng.uniform(-1, 1, (3, 3)))
    pos = rng.uniform(0, 1, (n, 3)) @ cell if positions is None else positions
    return pc.neighbor_list(
        torch.tensor(pos), torch.tensor(cell), r_cut, self_interaction=self_interaction
    )


def inputs(g, conv, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    F = torch.randn(g.num_nodes, pc.Irreps(conv.irreps_in).dim, generator=gen, dtype=dtype)
    R = torch.randn(g.num_edges, conv.weight_numel, generator=gen, dtype=dtype)
    return F, R


def radial(length, n, seed=0):
    """R as a smooth function of |r| only (needed for translation / supercell invariance)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=gen, dtype=torch.float64) * 3
    b = torch.rand(n, generator=gen, dtype=torch.float64) * 6
    return torch.sin(length[:, None] * a + b)


def test_weight_numel_and_w_match_thesis_closed_form():
    # With both parities of every input degree (same multiplicity) and the filter not cutting
    # any path, exactly one of the two parity blocks couples for each l, so the path count per
    # (l_out, l_in) is 1 + 2 min(l_out, l_in) and W is exactly eq. B.34 / B.35 restricted to
    # l_in = l_out for r = 0.
    ir_in, ir_out = "3x0e+3x0o+2x1o+2x1e+1x2e+1x2o", "2x0e+1x1o+2x2e"
    t = pc.path_table(ir_in, ir_out, 4, "e3nn")
    vin = {0: 3, 1: 2, 2: 1}
    numel = sum(
        u * vin[li] * (1 + 2 * min(lo, li)) for u, lo in [(2, 0), (1, 1), (2, 2)] for li in vin
    )
    assert (
        t.weight_numel
        == numel
        == pc.PeriodicConvolution(ir_in, ir_out, 4, convention="e3nn").weight_numel
    )
    for k, lo in enumerate([0, 1, 2]):
        n = sum(v * (1 + 2 * min(lo, li)) for li, v in vin.items())
        assert t.w_nonzero[k] == pytest.approx(math.sqrt(4 * math.pi * (2 * lo + 1) / n), 1e-15)
        assert t.w_zero[k] == pytest.approx(math.sqrt(4 * math.pi * (2 * lo + 1) / vin[lo]), 1e-15)


def test_parity_rule_and_filter_cut():
    t = pc.path_table("1x1o", "1x0e+1x1o+1x1e+1x2e", 1, "e3nn")
    got = {(t.irreps_out[p.k].l, t.irreps_out[p.k].parity, p.l) for p in t.paths}
    # p_out = p_in (-1)^l with p_in = -1, l <= 1
    assert got == {(0, 1, 1), (1, -1, 0), (1, 1, 1), (2, 1, 1)}


def test_matches_e3nn_tensor_product_plus_scatter():
    from e3nn import o3

    g = structure(self_interaction=False)
    conv = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="e3nn", scaling="none")
    hub = pc.DataHub(g, L_F, convention="e3nn")
    F, R = inputs(g, conv)
    sh = o3.Irreps.spherical_harmonics(L_F)
    instructions, weights = [], []
    for p in conv.paths:
        instructions.append((p.i, p.l, p.k, "uvw", True))
        # e3nn's 'uvw' weight is [mul_in1, mul_in2 = 1, mul_out] = [v, 1, u]
        w = R[:, p.offset : p.offset + p.u * p.v].reshape(-1, p.u, p.v).transpose(1, 2)
        weights.append(w.reshape(-1, p.u * p.v))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its wigner_3j buffers in this dtype
    try:
        tp = o3.TensorProduct(
            IR_IN, sh, IR_OUT, instructions, irrep_normalization="none",
            path_normalization="none", shared_weights=False, internal_weights=False,
        )  # fmt: skip
    finally:
        torch.set_default_dtype(default)
    Y = o3.spherical_harmonics(sh, g.edge_vec, normalize=True, normalization="integral")
    msg = tp(F[g.neighbor], Y, torch.cat(weights, 1))
    expected = torch.zeros(g.num_nodes, tp.irreps_out.dim, dtype=torch.float64)
    expected = expected.index_add(0, g.center, msg)
    for backend in ["reference", "torch", "auto"]:
        conv.backend = backend
        torch.testing.assert_close(conv(F, hub, R), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("convention", conventions())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_backend_equals_reference(convention, dtype):
    g = structure(n=4)
    hub = pc.DataHub(g, L_F, convention=convention)
    if dtype == torch.float32:
        hub = pc.DataHub(g.recompute_vectors(g.positions.float(), g.cell.float()), L_F,
                         convention=convention)  # fmt: skip
    ref = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention=convention, backend="reference")
    fused = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention=convention, backend="torch")
    F, R = inputs(g, ref, dtype)
    a, b = ref(F, hub, R), fused(F, hub, R)
    if dtype == torch.float64:
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0)
    else:
        assert float((b - a).norm() / a.norm()) < 1e-5
    # chunking does not change the result
    c = pc.periodic_convolution(F, hub, R, IR_IN, IR_OUT, L_F, convention=convention,
                                backend="torch", chunk=5)  # fmt: skip
    torch.testing.assert_close(c, b, atol=1e-12 if dtype == torch.float64 else 1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_gradcheck_features_R_positions(backend):
    g0 = structure(n=2, r_cut=3.0)
    conv = pc.PeriodicConvolution("1x0e+1x1o", "1x0e+1x1o+1x2e", 2, convention="e3nn",
                                  backend=backend)  # fmt: skip
    F, R = inputs(g0, conv)
    F.requires_grad_(True)
    R.requires_grad_(True)
    pos = g0.positions.clone().requires_grad_(True)
    cell = g0.cell.clone().requires_grad_(True)

    def f(F, R, pos, cell):
        hub = pc.DataHub(g0.recompute_vectors(pos, cell), 2, convention="e3nn")
        return conv(F, hub, R)

    # positions -> forces, cell -> stress (through the image shifts and rsh's gradient)
    assert torch.autograd.gradcheck(f, (F, R, pos, cell), atol=1e-8)


def test_gradgradcheck_torch_path():
    g0 = structure(n=2, r_cut=2.6)
    conv = pc.PeriodicConvolution("1x0e+1x1o", "1x0e+1x1o", 1, convention="e3nn",
                                  backend="torch")  # fmt: skip
    F, R = inputs(g0, conv)
    F.requires_grad_(True)
    R.requires_grad_(True)
    pos = g0.positions.clone().requires_grad_(True)

    def f(F, R, pos):
        hub = pc.DataHub(g0.recompute_vectors(pos), 1, convention="e3nn")
        return conv(F, hub, R)

    assert torch.autograd.gradgradcheck(f, (F, R, pos), atol=1e-7)


@pytest.mark.parametrize("convention", conventions())
def test_e3_equivariance_end_to_end(convention):
    """Rotate, invert and translate the crystal (positions and cell rows) and rotate the input
    features: the neighbour list, the hub and the convolution give the rotated output.
    rsh.testing.assert_equivariant draws the rotations (proper and improper, so parities are
    checked) and the translations."""
    import rsh.testing

    g0 = structure(n=3)
    conv = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention=convention, backend="torch")
    F, _ = inputs(g0, conv)

    def fn(positions, cell, features):
        g = pc.neighbor_list(positions, cell, 3.5, self_interaction=True)
        hub = pc.DataHub(g, L_F, convention=convention)
        return conv(features, hub, radial(g.length, conv.weight_numel))

    worst = rsh.testing.assert_equivariant(
        fn,
        [g0.positions, g0.cell[0], F],
        ["cartesian_points", "cartesian_vectors", IR_IN],
        IR_OUT,
        convention=convention,
        translation=True,
        atol=1e-10,
        generator=torch.Generator().manual_seed(5),
    )
    assert worst < 1e-10


def test_translation_and_supercell_invariance():
    g = structure(n=3, r_cut=3.2)
    conv = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="e3nn", backend="torch")
    F, _ = inputs(g, conv)
    out = conv(F, pc.DataHub(g, L_F, convention="e3nn"), radial(g.length, conv.weight_numel))
    pos, cell = g.positions, g.cell[0]
    # translating every atom (wrapped back into the cell or not) changes nothing
    gt = pc.neighbor_list(pos + torch.tensor([0.3, -1.7, 2.2], dtype=torch.float64), cell, 3.2,
                          self_interaction=True)  # fmt: skip
    out_t = conv(F, pc.DataHub(gt, L_F, convention="e3nn"), radial(gt.length, conv.weight_numel))
    torch.testing.assert_close(out_t, out, atol=1e-12, rtol=0)
    # 2x1x1 supercell: the per-atom outputs repeat
    pos2 = torch.cat([pos, pos + cell[0]])
    cell2 = cell * torch.tensor([[2.0], [1.0], [1.0]], dtype=torch.float64)
    g2 = pc.neighbor_list(pos2, cell2, 3.2, self_interaction=True)
    out2 = conv(torch.cat([F, F]), pc.DataHub(g2, L_F, convention="e3nn"),
                radial(g2.length, conv.weight_numel))  # fmt: skip
    torch.testing.assert_close(out2, torch.cat([out, out]), atol=1e-12, rtol=0)


def test_output_variance_is_one():
    """Unit-variance F and R -> unit-variance outputs (App. B), for r != 0 and r = 0 edges.

    Neighbours are distinct atoms (case 1 of App. B): 60 atoms in a 24 Å cube, r_cut 8 Å (~9
    neighbours), so
    a neighbour is never an image of the same atom. Each of the 30 draws gives a variance
    estimate over all atoms and components; the draws are independent, so their standard
    error (asserted below 0.03) bounds the noise. The tolerance 0.12 is > 4 standard errors,
    while a wrong W (e.g. the thesis's closed form with filter-cut paths, or a missing
    sqrt(2 l_out + 1)) moves the variance by > 25 % for these irreps.
    """
    ir_in, ir_out = "4x0e+4x1o+4x2e", "4x0e+4x1o+4x2e+2x1e"
    conv = pc.PeriodicConvolution(ir_in, ir_out, 2, convention="e3nn", backend="torch")
    rng = np.random.default_rng(3)
    cell = np.eye(3) * 24.0
    pos = rng.uniform(0, 24.0, (60, 3))
    # r = 0 edges alone are cheap (E = N), so they get more draws for the same precision.
    for r_cut, self_int, draws in [(8.0, False, 30), (0.01, True, 150)]:
        g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), r_cut,
                             self_interaction=self_int)  # fmt: skip
        assert not g.has_isolated  # isolated atoms would (correctly) output 0 and bias this
        hub = pc.DataHub(g, 2, convention="e3nn")
        gen = torch.Generator().manual_seed(0)
        ir = pc.Irreps(ir_out)
        offs = [s.start for s in ir.slices()]
        per_block = np.zeros((draws, len(ir)))
        for d in range(draws):
            F = torch.randn(g.num_nodes, 36, generator=gen, dtype=torch.float64)
            R = torch.randn(g.num_edges, conv.weight_numel, generator=gen, dtype=torch.float64)
            out = conv(F, hub, R)
            for k, b in enumerate(ir):
                per_block[d, k] = float(out[:, offs[k] : offs[k] + b.dim].pow(2).mean())
        for k, b in enumerate(ir):
            v = per_block[:, k]
            if self_int and conv.table.w_zero[k] == 0:
                assert v.max() == 0  # 1e has no l = 0 path: r = 0 edges give it nothing
                continue
            se = v.std(ddof=1) / math.sqrt(len(v))
            assert se < 0.03, (str(b), r_cut, se)
            assert abs(v.mean() - 1) < 0.12, (str(b), r_cut, v.mean(), se)


def test_isolated_atoms_give_zero_and_finite_gradients():
    cell = torch.eye(3, dtype=torch.float64) * 10.0
    pos = torch.tensor([[0, 0, 0], [1.0, 0, 0], [5.0, 5.0, 5.0]], dtype=torch.float64)
    g = pc.neighbor_list(pos, cell, 2.0)
    hub = pc.DataHub(g, 1, convention="e3nn")
    assert hub.isolated.tolist() == [2]
    conv = pc.PeriodicConvolution("1x0e+1x1o", "1x0e+1x1o", 1, convention="e3nn",
                                  backend="torch")  # fmt: skip
    F, R = inputs(g, conv)
    F.requires_grad_(True)
    out = conv(F, hub, R)
    assert torch.isfinite(out).all() and (out[2] == 0).all()
    out.sum().backward()
    assert torch.isfinite(F.grad).all()


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise():
    g = structure(n=2)
    conv = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="e3nn")
    hub = pc.DataHub(g, L_F, convention="e3nn")
    F, R = inputs(g, conv)
    with pytest.raises(ValueError, match="features must have shape"):
        conv(F[:, :-1], hub, R)
    with pytest.raises(ValueError, match="R must have shape"):
        conv(F, hub, R[:-1])
    with pytest.raises(TypeError, match="hub"):
        conv(F, object(), R)
    with pytest.raises(TypeError, match="dtype"):
        conv(F.float(), hub, R)
    with pytest.raises(ValueError, match="l_max"):
        conv(F, pc.DataHub(g, 1, convention="e3nn"), R)
    with pytest.raises(ValueError, match="sh_normalization"):
        conv(F, pc.DataHub(g, L_F, convention="e3nn", sh_normalization="component"), R)
    with pytest.raises(ValueError, match="irreps_in="):
        pc.PeriodicConvolution("2y0e", IR_OUT, 2)
    with pytest.raises(TypeError, match="irreps_in"):
        pc.PeriodicConvolution(3, IR_OUT, 2)
    with pytest.raises(ValueError, match=r"irreps_in='1x0e\+1x1' does not parse"):
        pc.PeriodicConvolution("1x0e+1x1", IR_OUT, 2)  # parity is required (rsh.Irreps)
    with pytest.raises(ValueError, match=r"irreps_out=.* no irreps with multiplicity > 0"):
        pc.PeriodicConvolution(IR_IN, "0x0e", 2)
    with pytest.raises(TypeError, match="l_filter_max"):
        pc.PeriodicConvolution(IR_IN, IR_OUT, 2.0)  # the same rule as rsh.conventions
    with pytest.raises(TypeError, match="chunk"):
        pc.periodic_convolution(F, hub, R, IR_IN, IR_OUT, L_F, convention="e3nn", chunk="a")
    for chunk in (0, -3):  # the right type, a value out of range
        with pytest.raises(ValueError, match=r"chunk must be None or an int >= 1"):
            pc.periodic_convolution(F, hub, R, IR_IN, IR_OUT, L_F, convention="e3nn", chunk=chunk)
    with pytest.raises(TypeError, match=r"features must be a torch\.Tensor, got ndarray"):
        pc.periodic_convolution(F.numpy(), hub, R, IR_IN, IR_OUT, L_F, convention="e3nn")
    with pytest.raises(TypeError, match=r"R must be a torch\.Tensor, got ndarray"):
        pc.periodic_convolution(F, hub, R.numpy(), IR_IN, IR_OUT, L_F, convention="e3nn")
    with pytest.raises(ValueError, match="no valid path"):
        pc.PeriodicConvolution("1x0e", "1x3o", 2, convention="e3nn")
    with pytest.raises(ValueError, match="no valid path"):
        pc.PeriodicConvolution("1x0e", "1x0o", 4, convention="e3nn")
    with pytest.raises(ValueError, match="backend"):
        pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="e3nn", backend="gpu")
    with pytest.raises(ValueError, match="scaling must be one of"):
        pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="e3nn", scaling="x")
    with pytest.raises(ValueError, match="scaling must be one of"):
        pc.periodic_convolution(F, hub, R, IR_IN, IR_OUT, L_F, convention="e3nn", scaling="thesis")
    with pytest.raises(TypeError, match="normalization"):
        pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, normalization="none")
    with pytest.raises(ValueError, match="convention"):
        pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="sphericart")
    with pytest.raises(ValueError, match="l_filter_max"):
        pc.PeriodicConvolution(IR_IN, IR_OUT, -1, convention="e3nn")
    with pytest.raises(ValueError, match="l_max"):
        pc.DataHub(g, -1)
    with pytest.raises(TypeError, match="graph"):
        pc.DataHub("graph", 2)


def test_hub_convention_mismatch_raises():
    g = structure(n=2)
    conv = pc.PeriodicConvolution(IR_IN, IR_OUT, L_F, convention="thesis")
    F, R = inputs(g, conv)
    with pytest.raises(ValueError, match="convention"):
        conv(F, pc.DataHub(g, L_F, convention="e3nn"), R)


# ----------------------------------------------------------------------------- API (issue 10)
def test_default_convention_is_standard_everywhere():
    import inspect

    g = structure(n=2)
    assert pc.PeriodicConvolution(IR_IN, IR_OUT, L_F).convention == "standard"
    assert pc.DataHub(g, L_F).convention == "standard"
    assert pc.path_table(IR_IN, IR_OUT, L_F).convention == "standard"
    for fn in (pc.periodic_convolution, pc.coupling):
        assert inspect.signature(fn).parameters["convention"].default == "standard"


def test_spherical_harmonics_removed_with_pointer():
    with pytest.raises(AttributeError, match=r"rsh\.spherical_harmonics"):
        pc.spherical_harmonics  # noqa: B018
    assert "spherical_harmonics" not in pc.__all__


@pytest.mark.parametrize("convention", ["standard", "thesis", "e3nn"])
def test_coupling_same_keywords_as_gaunt_elastic(convention):
    import gaunt_elastic

    assert pc.coupling is gaunt_elastic.coupling  # one home, re-exported
    for dtype in (torch.float64, torch.float32):
        mine = pc.coupling(2, 1, 3, convention=convention, dtype=dtype)
        ref = gaunt_elastic.coupling(2, 1, 3, convention=convention, dtype=dtype)
        assert mine.dtype == ref.dtype == dtype
        torch.testing.assert_close(mine, ref, rtol=0, atol=0)
    mine.zero_()  # a fresh tensor: the cache is not modified
    assert pc.coupling(2, 1, 3, convention=convention, dtype=torch.float32).abs().sum() > 0
    with pytest.raises(TypeError):
        pc.coupling(2, 1, 3, convention)  # keyword-only, as in gaunt_elastic
