import json

import pytest
import xtalnet
from hypothesis import given
from hypothesis import strategies as st
from xtalnet import NetworkConfig


def test_defaults_are_usable():
    cfg = NetworkConfig()
    assert cfg.targets == ("formation_energy_per_atom",)
    assert cfg.r_cut == 5.0 and cfg.num_layers == 4
    assert cfg.columns == ("formation_energy_per_atom",)


def test_issue_example_fields():
    cfg = NetworkConfig(
        targets=["formation_energy_per_atom", "elastic_tensor"], r_cut=5.0, num_layers=4,
        dtype="float64",
    )  # fmt: skip
    assert cfg.targets == ("formation_energy_per_atom", "elastic_tensor")
    assert cfg.torch_dtype.is_floating_point and str(cfg.torch_dtype) == "torch.float64"


@given(
    r_cut=st.floats(0.5, 20.0),
    num_layers=st.integers(1, 8),
    pooling=st.sampled_from(["mean", "sum"]),
    dtype=st.sampled_from(["float32", "float64"]),
    targets=st.lists(
        st.sampled_from(["band_gap", "K_VRH", "elastic_tensor", "e_total:tensor=ij=ji", "x"]),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    prior=st.one_of(st.none(), st.tuples(st.floats(0, 1), st.floats(-5, 5), st.floats(0.01, 5))),
)
def test_json_round_trip(tmp_path_factory, r_cut, num_layers, pooling, dtype, targets, prior):
    cfg = NetworkConfig(targets=targets, r_cut=r_cut, num_layers=num_layers, pooling=pooling,
                        dtype=dtype, band_gap_prior=prior)  # fmt: skip
    assert NetworkConfig.from_json(cfg.to_json()) == cfg
    path = tmp_path_factory.mktemp("cfg") / "c.json"
    cfg.to_json(path)
    assert NetworkConfig.from_json(path) == cfg
    assert NetworkConfig.from_dict(json.loads(path.read_text())) == cfg


@pytest.mark.parametrize("features", ["onehot", "elemental", "both"])
def test_species_features_round_trip_and_old_configs(features):
    cfg = NetworkConfig(species_features=features, embed_dim=8)
    assert NetworkConfig.from_json(cfg.to_json()) == cfg
    assert NetworkConfig.from_dict(cfg.to_dict()).species_features == features
    # a config written before the field existed means the one-hot embedding
    old = {k: v for k, v in cfg.to_dict().items() if k != "species_features"}
    assert NetworkConfig.from_dict(old).species_features == "onehot"


def test_from_recommendation_reads_mp_audit_json(tmp_path):
    import mp_audit

    summary = {
        "n_geometry": 100,
        "recommendation": {"target": 0.95, "r_cut": 6.0, "layers": 3, "coverage": 0.97},
        "coverage": {"5.0": 0.9, "6.0": 0.97},
        "coverage_layers": [2, 3],
        "band_gap": {"p": 0.55, "mu": 1.274, "sigma": 0.612, "zero_fraction": 0.45},
        "formation_energy": {"mean": -1.0, "std": 1.0},
    }
    rec = mp_audit.recommendation_json(summary, "test")
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(rec))
    for source in (rec, path, str(path)):
        cfg = NetworkConfig.from_recommendation(source, targets=["band_gap"])
        assert cfg.r_cut == 6.0 and cfg.num_layers == 3
        assert cfg.band_gap_prior == (0.55, 1.274, 0.612)
        assert cfg.targets == ("band_gap",)
    # overrides win
    assert NetworkConfig.from_recommendation(rec, r_cut=4.0).r_cut == 4.0


def test_recommendation_prior_reaches_the_band_gap_head():
    cfg = NetworkConfig(targets=["band_gap"], band_gap_prior=(0.55, 1.274, 0.612), num_layers=1)
    net = xtalnet.Network(cfg)
    head = net.heads["band_gap"]
    assert float(head.p) == pytest.approx(0.55) and float(head.mu) == pytest.approx(1.274)
    assert float(head.sigma) == pytest.approx(0.612, rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"targets": []}, "targets"),
        ({"targets": ["a b"]}, "COLUMN"),
        ({"targets": ["band_gap", "band_gap:scalar"]}, "more than once"),
        ({"r_cut": 0.0}, "r_cut"),
        ({"r_cut": float("nan")}, "r_cut"),
        ({"r_cut": 150.0}, "r_cut"),  # the one range: periodic_conv.MAX_R_CUT = 100 Å
        ({"num_layers": 0}, "num_layers"),
        ({"hidden_irreps": "16x0+4x1"}, "hidden_irreps"),
        ({"hidden_irreps": "4x1o"}, "scalar"),
        ({"hidden_irreps": ""}, "hidden_irreps"),
        ({"pooling": "max"}, "pooling"),
        ({"dtype": "float16"}, "dtype"),
        ({"convention": "wrong"}, "convention"),
        ({"backend": "gpu"}, "backend"),
        ({"max_edges": 0}, "max_edges"),
        ({"band_gap_prior": (2.0, 1.0, 1.0)}, "band_gap_prior"),
        ({"band_gap_prior": (0.5, 1.0, 0.0)}, "band_gap_prior"),
        ({"band_gap_prior": "abc"}, "band_gap_prior"),
        ({"norm_eps": 0.0}, "norm_eps"),
        ({"species_features": "one-hot"}, "species_features"),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetworkConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"r_cut": "5"}, "r_cut"),
        ({"num_layers": 2.0}, "num_layers"),
        ({"num_layers": True}, "num_layers"),
        ({"residual": 1}, "residual"),
        ({"hidden_irreps": 3}, "hidden_irreps"),
    ],
)
def test_bad_types_raise_type_error_naming_the_field(kwargs, match):
    with pytest.raises(TypeError, match=match):
        NetworkConfig(**kwargs)


def test_bad_json_and_recommendation(tmp_path):
    with pytest.raises(ValueError, match="unknown config keys"):
        NetworkConfig.from_dict({"r_cutoff": 5.0})
    with pytest.raises(ValueError, match="schema"):
        NetworkConfig.from_dict({"schema": "other/1"})
    with pytest.raises(ValueError, match="no such file"):
        NetworkConfig.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        NetworkConfig.from_json(bad)
    with pytest.raises(ValueError, match="mp-audit/recommendation/1"):
        NetworkConfig.from_recommendation({"r_cut": 5.0})
