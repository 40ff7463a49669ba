"""Backward compatibility: a checkpoint written by xtalnet 0.1.0 (before the package was split
into ``nn/``, ``heads/``, ``training/`` and ``inference``) loads and predicts the numbers it
predicted then (float64, targets y, band_gap and the e_total tensor, "both" species features).

The fixture was written once by 0.1.0 from 12 rattled ASE crystals (its optimizer state
removed to keep it small: loading never reads it); the JSON holds three probe structures and
the predictions 0.1.0 made for them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xtalnet
from pymatgen.core import Structure

DATA = Path(__file__).parent / "data"


def test_a_checkpoint_of_version_0_1_0_predicts_the_same_numbers():
    saved = json.loads((DATA / "checkpoint-0.1.0-predictions.json").read_text())
    structures = [Structure.from_dict(d) for d in saved["structures"]]
    net = xtalnet.load(DATA / "checkpoint-0.1.0.pt")
    assert net.config.targets == ("y", "band_gap", "e_total")
    pred = net.predict(structures)
    assert set(pred) == set(saved["predictions"])
    for key, expected in saved["predictions"].items():
        np.testing.assert_allclose(pred[key], expected, rtol=1e-12, atol=1e-12, err_msg=key)
