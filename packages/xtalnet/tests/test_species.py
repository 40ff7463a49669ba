"""The elemental descriptor table of the ``"elemental"`` species embedding."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import xtalnet
from xtalnet import NetworkConfig
from xtalnet.config import MAX_Z
from xtalnet.species import DESCRIPTORS, elemental_table, raw_elemental_table

COL = {name: k for k, name in enumerate(DESCRIPTORS)}
H, HE, O, F, NA, FE, KR, XE, RN = 1, 2, 8, 9, 11, 26, 36, 54, 86


def test_table_shape_finite_and_standardised():
    t = elemental_table()
    assert t.shape == (MAX_Z + 1, len(DESCRIPTORS)) and t.dtype == np.float64
    assert np.isfinite(t).all()
    assert (t[0] == 0).all()  # no element
    np.testing.assert_allclose(t[1:].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(t[1:].std(0), 1.0, atol=1e-12)
    # every element is told apart from every other
    assert len({tuple(row) for row in t[1:].round(9)}) == MAX_Z


def test_known_physical_values():
    raw = raw_elemental_table()
    x = raw[:, COL["electronegativity"]]
    assert x[F] > x[O] > x[NA]
    assert x[O] == pytest.approx(3.44) and x[F] == pytest.approx(3.98)
    assert raw[FE, COL["group"]] == 8 and raw[FE, COL["row"]] == 4
    assert raw[FE, COL["block_d"]] == 1 and raw[FE, COL["block_s"]] == 0
    assert (raw[FE, COL["valence_s"]], raw[FE, COL["valence_d"]]) == (2, 6)
    assert (raw[O, COL["valence_s"]], raw[O, COL["valence_p"]]) == (2, 4)
    assert raw[NA, COL["first_ionization_energy"]] == pytest.approx(5.139, abs=1e-3)
    assert raw[H, COL["log_atomic_mass"]] == pytest.approx(np.log(1.00794), abs=1e-4)
    assert raw[O, COL["min_common_oxidation_state"]] == -2
    # standardisation keeps the order of a descriptor
    t = elemental_table()[:, COL["electronegativity"]]
    assert t[F] > t[O] > t[NA]


def test_missing_values_take_the_group_mean():
    raw = raw_elemental_table()
    k = COL["electronegativity"]
    assert np.isnan(raw[HE, k])  # pymatgen has no Pauling electronegativity for He
    group18 = [KR, XE, RN]
    expected = np.mean(raw[group18, k])
    col = raw[1:, k]
    present = col[~np.isnan(col)]
    filled = np.concatenate([present, [expected] * int(np.isnan(col).sum())])
    standardised = (expected - filled.mean()) / filled.std()
    assert elemental_table()[HE, k] == pytest.approx(standardised, abs=1e-12)


def test_table_is_cached_and_read_only():
    assert elemental_table() is elemental_table()
    with pytest.raises(ValueError):
        elemental_table()[1, 0] = 0.0
    with pytest.raises(ValueError):
        raw_elemental_table()[1, 0] = 0.0


def test_import_xtalnet_does_not_build_the_table():
    code = "import sys, xtalnet; print('pymatgen.core.periodic_table' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("features", ["elemental", "both"])
def test_alike_elements_start_alike(features):
    """Na and K (group 1) are closer in the initial embedding than Na and F."""
    net = xtalnet.Network(NetworkConfig(embed_dim=64, dtype="float64", species_features=features))
    with torch.no_grad():
        e = net.embedding(torch.tensor([11, 19, 9]))
    assert (e[0] - e[1]).norm() < (e[0] - e[2]).norm()


def test_unknown_species_features_names_the_field():
    with pytest.raises(ValueError, match="species_features"):
        NetworkConfig(species_features="cgcnn")
