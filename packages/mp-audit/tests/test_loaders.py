"""Loaders: every shared file with its row count, builtins, local formats, bad input."""

from __future__ import annotations

import gzip
import json

import mp_audit
import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

ROW_COUNTS = {
    "mp20/train.csv": 847,
    "mp20/val.csv": 123,
    "mp20/test.csv": 142,
    "mp20/extra.csv": 243,
    "mp_other/matminer_flla_2015.csv.gz": 3938,
    "mp_other/matminer_dielectric_constant.csv.gz": 1056,
    "mp_other/chemeleon_mp40_test.csv.gz": 708,
    "elastic/matminer_elastic_tensor_2015.csv.gz": 1181,
    "elastic/trachote_mp_elastic_val_clean.json.gz": 1211,
    "elastic/matten_example_elasticity_tensor_n100.json": 100,
    "elastic/matcalc_mp_binary_pbe_elasticity_2025.1.json.gz": 3953,
    "tensors/matminer_piezoelectric_tensor.csv.gz": 941,
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(ROW_COUNTS))
def test_every_shared_file_loads_with_its_row_count(shared_data, name):
    ds = mp_audit.load(shared_data / name)
    entries = list(ds)
    assert len(entries) == len(ds) == ROW_COUNTS[name]
    assert all(isinstance(e.material_id, str) for e in entries)
    # a sample parses, and the parsed site counts match a stored nsites where there is one
    for entry, structure, err in ds.head(15).structures():
        assert err is None, (entry.material_id, err)
        if entry.props.get("nsites") is not None:
            assert len(structure) == int(entry.props["nsites"])


@pytest.mark.shared_data
def test_every_shared_file_is_covered(shared_data):
    found = {
        str(p.relative_to(shared_data))
        for p in shared_data.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert found == set(ROW_COUNTS)


@pytest.mark.shared_data
def test_mp20_folder_concatenates_all_splits(shared_data):
    ds = mp_audit.load(shared_data / "mp20")
    ids = [e.material_id for e in ds]
    assert len(ids) == 1355 == len(set(ids))
    assert ds.meta["files"] == {"extra.csv": 243, "test.csv": 142, "train.csv": 847, "val.csv": 123}
    assert any(i.startswith("mvc-") for i in ids)


@pytest.mark.shared_data
def test_matminer_values_are_read(shared_data):
    flla = list(mp_audit.load(shared_data / "mp_other/matminer_flla_2015.csv.gz"))
    assert flla[0].material_id == "mp-10"
    assert flla[0].props["formation_energy_per_atom"] == pytest.approx(0.10740506)
    el = next(iter(mp_audit.load(shared_data / "elastic/matminer_elastic_tensor_2015.csv.gz")))
    assert len(el.props["elastic_tensor"]) == 6
    mt = list(mp_audit.load(shared_data / "elastic/matten_example_elasticity_tensor_n100.json"))
    assert mt[7].material_id == "matten_example_elasticity_tensor_n100.json:7"


def test_builtins():
    protos = mp_audit.load("builtin:prototypes")
    assert len(protos) == 288
    assert len({e.material_id for e in protos}) == 288
    assert protos.parse_failures() == []
    dcdft = mp_audit.load("builtin:dcdft")
    assert len(dcdft) == 71
    fe = next(e for e in dcdft if e.material_id == "dcdft:Fe")
    s = mp_audit.parse_payload(fe.payload)
    assert s.composition.reduced_formula == "Fe" and len(s) == 2
    assert fe.props["K_wien2k"] == pytest.approx(197.652)


def _nacl() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0] * 3, [0.5] * 3]
    )


def test_cdvae_csv_with_a_broken_row_lists_it_by_id(tmp_path):
    good = _nacl().to(fmt="cif")
    path = tmp_path / "data.csv"
    import pandas as pd

    pd.DataFrame(
        {
            "material_id": ["mp-ft", "0012", "mp-bad"],
            "band_gap": [1.0, 0.0, 2.0],
            "cif": [good, good, "data_broken\n_cell_length_a 3\nnonsense"],
        }
    ).to_csv(path)
    ds = mp_audit.load(path)
    ids = [e.material_id for e in ds]
    assert ids == ["mp-ft", "0012", "mp-bad"]  # never int-parsed
    failures = ds.parse_failures()
    assert [f[0] for f in failures] == ["mp-bad"]
    result = mp_audit.audit(ds, progress=False)
    issues = result.summary["data_issues"]
    assert [f["material_id"] for f in issues["parse_failures"]] == ["mp-bad"]
    assert result.summary["n_geometry"] == 2


def test_ids_that_pandas_reads_as_missing_stay_ids(tmp_path):
    """ "NA", "nan" and "None" are ids of their rows (pandas' default NA strings turned them
    into ``file.csv:ROW``); an empty id still names the row by the file; a missing target
    value stays missing."""
    good = _nacl().to(fmt="cif").replace('"', "'")
    path = tmp_path / "ids.csv"
    rows = [("0012", "1.0"), ("NA", "2.0"), ("nan", ""), ("None", "NA"), ("", "5.0")]
    path.write_text("material_id,band_gap,cif\n" + "".join(
        f'{m},{g},"{good}"\n' for m, g in rows))  # fmt: skip
    entries = list(mp_audit.load(path))
    assert [e.material_id for e in entries] == ["0012", "NA", "nan", "None", "ids.csv:4"]
    gaps = [e.props.get("band_gap") for e in entries]
    assert gaps[0] == 1.0 and gaps[2] is None and gaps[3] is None


def test_a_poscar_column_wins_over_cif_text_it_keeps_the_cells_frame(tmp_path):
    """A CIF keeps only lattice parameters (pymatgen rebuilds the cell with a along x); a
    POSCAR keeps the Cartesian cell that a stored tensor refers to. Beside CIF text, the
    ``poscar`` column is read."""
    import pandas as pd

    s = Structure(Lattice([[3.0, 1.0, 0.5], [-1.0, 4.0, 0.2], [0.3, -0.4, 5.0]]),
                  ["Ga", "N"], [[0, 0, 0], [0.3, 0.6, 0.4]])  # fmt: skip
    path = tmp_path / "two.csv"
    pd.DataFrame({"material_id": ["m1"], "structure": [s.to(fmt="cif")],
                  "poscar": [s.to(fmt="poscar")]}).to_csv(path, index=False)  # fmt: skip
    got = mp_audit.parse_payload(next(iter(mp_audit.load(path))).payload)
    np.testing.assert_allclose(got.lattice.matrix, s.lattice.matrix, atol=1e-6)
    cif = Structure.from_str(s.to(fmt="cif"), fmt="cif")  # what the CIF column gave
    assert not np.allclose(cif.lattice.matrix, s.lattice.matrix, atol=1e-3)
    only = tmp_path / "one.csv"  # a CIF column alone is still read
    pd.DataFrame({"material_id": ["m1"], "cif": [s.to(fmt="cif")]}).to_csv(only, index=False)
    assert len(mp_audit.parse_payload(next(iter(mp_audit.load(only))).payload)) == 2


@pytest.mark.shared_data
def test_dielectric_tensors_obey_their_crystals_symmetry_in_the_frame_read(shared_data):
    """Petousis' e_total is stated in the POSCAR cell: there it is invariant under the
    crystal's point group (R e Rᵀ = e) up to the data's noise; in the CIF's rebuilt cell it
    was not (relative violation 0.09-0.72 on these four rows)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    ids = {"mp-753746", "mp-634859", "mp-13150", "mp-866818"}
    path = shared_data / "mp_other/matminer_dielectric_constant.csv.gz"
    rows = [e for e in mp_audit.load(path, columns=["e_total"]) if e.material_id in ids]
    assert len(rows) == len(ids)
    worst = []
    for e in rows:
        s = mp_audit.parse_payload(e.payload)
        eps = np.asarray(e.props["e_total"], dtype=float)
        ops = SpacegroupAnalyzer(s, symprec=0.01).get_symmetry_operations(cartesian=True)
        worst.append(max(np.abs(op.rotation_matrix @ eps @ op.rotation_matrix.T - eps).max()
                         for op in ops) / np.abs(eps).max())  # fmt: skip
    assert max(worst) < 0.1 and np.mean(worst) < 0.03, worst  # the CIF cells: mean 0.38


def test_matminer_csv_with_ref_line_and_repr_dicts(tmp_path):
    s = _nacl()
    path = tmp_path / "m.csv"
    import pandas as pd

    frame = pd.DataFrame({"material_id": ["mp-1", "mp-2"], "structure": [repr(s.as_dict())] * 2})
    path.write_text("# ref: somebody 2015\n" + frame.to_csv(index=False))
    entries = list(mp_audit.load(path))
    assert [e.material_id for e in entries] == ["mp-1", "mp-2"]
    assert mp_audit.parse_payload(entries[1].payload) == s


def test_cif_folder_and_pymatgen_json(tmp_path):
    s = _nacl()
    folder = tmp_path / "cifs"
    folder.mkdir()
    for name in ("b", "a"):
        s.to(filename=str(folder / f"{name}.cif"))
    ds = mp_audit.load(folder)
    assert [e.material_id for e in ds] == ["a", "b"]
    assert ds.parse_failures() == []
    # POSCAR files by pymatgen's naming sit beside the CIFs; notes and tables do not count
    shifted = s.copy()
    shifted.translate_sites([0], [0.05, 0.0, 0.0])
    shifted.to(filename=str(folder / "c_POSCAR"), fmt="poscar")
    s.to(filename=str(folder / "d.vasp"), fmt="poscar")
    (folder / "notes.txt").write_text("not a structure")
    (folder / "poscar_list.csv").write_text("a,b\n1,2\n")
    ds = mp_audit.load(folder)
    assert [e.material_id for e in ds] == ["a", "b", "c_POSCAR", "d"]
    assert ds.parse_failures() == []
    parsed = [mp_audit.parse_payload(e.payload) for e in ds]
    assert parsed[2] == shifted and parsed[3] == s and parsed[2] != s
    assert mp_audit.is_structure_file(folder / "CONTCAR")
    assert mp_audit.is_structure_file(folder / "x.CIF")
    assert not mp_audit.is_structure_file(folder / "poscar_list.csv")
    assert len(mp_audit.load(folder / "c_POSCAR")) == 1
    # gzipped structure files read as their text; one that is not gzip fails alone, named
    with gzip.open(folder / "e.CIF.gz", "wt") as f:
        f.write(shifted.to(fmt="cif"))
    with gzip.open(folder / "f_POSCAR.gz", "wt") as f:
        f.write(s.to(fmt="poscar"))
    (folder / "g.cif.gz").write_text(s.to(fmt="cif"))  # plain text under a .gz name
    ds = mp_audit.load(folder)
    assert [e.material_id for e in ds] == ["a", "b", "c_POSCAR", "d", "e", "f_POSCAR", "g"]
    (bad,) = ds.parse_failures()
    assert bad[0] == "g" and "g.cif.gz: cannot read the file" in bad[1]
    parsed = [mp_audit.parse_payload(e.payload) for e in ds if e.material_id in ("e", "f_POSCAR")]
    assert parsed[0] == shifted and parsed[1] == s
    assert len(mp_audit.load(folder / "e.CIF.gz")) == 1
    # a name shared by two files (a.cif, a.vasp): each keeps its whole file name as its id
    s.to(filename=str(folder / "a.vasp"), fmt="poscar")
    ids = [e.material_id for e in mp_audit.load(folder)]
    assert ids[:3] == ["a.cif", "a.vasp", "b"] and len(set(ids)) == len(ids)
    assert not mp_audit.is_structure_file(folder / "x.csv.gz")
    (tmp_path / "one.json").write_text(json.dumps(s.as_dict()))
    (tmp_path / "many.json").write_text(json.dumps({"x-1": s.as_dict(), "x-2": s.as_dict()}))
    (tmp_path / "list.json").write_text(json.dumps([s.as_dict()] * 3))
    assert len(mp_audit.load(tmp_path / "one.json")) == 1
    assert [e.material_id for e in mp_audit.load(tmp_path / "many.json")] == ["x-1", "x-2"]
    assert len(mp_audit.load([tmp_path / "list.json", tmp_path / "one.json"])) == 4


def test_bad_sources(tmp_path):
    with pytest.raises(ValueError, match="builtin:nope"):
        mp_audit.load("builtin:nope")
    with pytest.raises(ValueError, match="not a file or folder"):
        mp_audit.load(tmp_path / "missing.csv")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="unsupported suffix"):
        mp_audit.load(tmp_path / "x.txt")
    (tmp_path / "nostruct.csv").write_text("material_id,band_gap\nmp-1,0.0\n")
    with pytest.raises(ValueError, match="no structure column"):
        mp_audit.load(tmp_path / "nostruct.csv")
    with pytest.raises(TypeError, match="source of type int: expected a string, path"):
        mp_audit.load(12)
    with pytest.raises(ValueError, match="n=-1"):
        mp_audit.load("builtin:dcdft").head(-1)
    with pytest.raises(ValueError, match="payload"):
        mp_audit.parse_payload("")


def test_a_list_of_structures_with_a_bad_item_fails_that_item_alone(tmp_path):
    """One null, molecule or typo in a JSON list of structures stopped the whole source
    ("no structure column"); it is now that row's parse failure, named."""
    from pymatgen.core import Molecule

    s = _nacl()
    mol = Molecule(["H", "H"], [[0, 0, 0], [0, 0, 0.74]])
    (tmp_path / "l.json").write_text(json.dumps([s.as_dict(), {"foo": 1}, None, mol.as_dict()]))
    ds = mp_audit.load(tmp_path / "l.json")
    assert len(ds) == 4
    failed = dict(ds.parse_failures())
    assert sorted(failed) == ["l.json:1", "l.json:2", "l.json:3"]
    assert "no pymatgen structure dict (keys: 'foo'" in failed["l.json:1"]
    assert "no structure stored" in failed["l.json:2"]
    assert "a Molecule has no lattice" in failed["l.json:3"]
    (tmp_path / "d.json").write_text(json.dumps({"x-1": s.as_dict(), "x-2": None}))
    assert [e.material_id for e in mp_audit.load(tmp_path / "d.json")] == ["x-1", "x-2"]
    # records with a structure column stay a table
    (tmp_path / "r.json").write_text(json.dumps([{"material_id": "m", "structure": s.as_dict(),
                                                  "band_gap": 1.0}]))  # fmt: skip
    (entry,) = mp_audit.load(tmp_path / "r.json", columns=["band_gap"])
    assert entry.material_id == "m" and entry.props["band_gap"] == 1.0
