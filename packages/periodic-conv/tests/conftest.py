"""periodic-conv's fixtures; ``seed``, ``rng`` and the hypothesis profiles are in the root
conftest.py."""

import numpy as np
import periodic_conv as pc
import pytest
import torch


@pytest.fixture
def skewed_graph():
    """``make(n_atoms, seed, device="cpu")``: random atoms in a skewed ~3 Å cell, r_cut 3.5 Å,
    self-interaction edges included; the Graph on ``device``."""

    def make(n: int, seed: int, device: str = "cpu") -> pc.Graph:
        rng = np.random.default_rng(seed)
        cell = 3.0 * (np.eye(3) + 0.3 * rng.uniform(-1, 1, (3, 3)))
        pos = rng.uniform(0, 1, (n, 3)) @ cell
        g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 3.5, self_interaction=True)
        if device == "cpu":
            return g
        return pc.Graph(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                           for k, v in g.__dict__.items()})  # fmt: skip

    return make
