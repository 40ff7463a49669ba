"""DistributedDataParallel: 2 CPU processes (torchrun, gloo) give the same parameters after 3
steps as one process on the same global batches (float64, 1e-10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import xtalnet._checkpoint as ck
from xtalnet._cli import main

# the CLI under torchrun, then: no DistributedDataParallel wrapper may outlive train(). One kept
# alive (in a reference cycle) holds the process group until interpreter exit, where Gloo's
# worker threads can abort the finished run with SIGABRT (seen once in CI).
_RUN_AND_CHECK_NO_LIVE_DDP = """
import gc, sys, torch
from xtalnet._cli import main
code = main(sys.argv[1:])
live = sum(isinstance(o, torch.nn.parallel.DistributedDataParallel) for o in gc.get_objects())
print(f"live DistributedDataParallel objects after train: {live}", file=sys.stderr)
sys.exit(code or (3 if live else 0))
"""


def _torchrun(tmp_path, args: list[str], timeout: int = 600) -> None:
    """``xtalnet ARGS`` on 2 CPU processes under torchrun (the script above); exit 0."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p.endswith("src"))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    (tmp_path / "run.py").write_text(_RUN_AND_CHECK_NO_LIVE_DDP)
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(tmp_path / "run.py"), *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]


def test_two_processes_equal_one_process(tmp_path, tiny_config):
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_config))
    args = ["train", "--data", "builtin:dcdft", "--target", "K_wien2k", "--config",
            str(tmp_path / "cfg.json"), "--r-cut", "5", "--layers", "2", "--batch-size", "9",
            "--max-steps", "3", "--lr", "1e-2", "--warmup-steps", "0", "--ema-decay", "0.5",
            "--no-progress", "--quiet"]  # fmt: skip
    _torchrun(tmp_path, [*args, "--out", str(tmp_path / "ddp")])
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    a = ck.read(tmp_path / "ddp" / "last.pt")
    b = ck.read(tmp_path / "one" / "last.pt")
    assert a["world_size"] == 2 and b["world_size"] == 1
    assert a["state"]["global_step"] == b["state"]["global_step"] == 3
    start = ck.read(tmp_path / "one" / "last.pt")  # parameters moved away from the init
    assert a["model"].keys() == b["model"].keys()
    moved = 0.0
    from xtalnet import Network, NetworkConfig

    init = Network(NetworkConfig.from_dict(start["config"])).state_dict()
    for k, v in b["model"].items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(a["model"][k], v, rtol=1e-10, atol=1e-10, msg=k)
            torch.testing.assert_close(a["ema"]["shadow"][k], b["ema"]["shadow"][k], rtol=1e-10,
                                       atol=1e-10, msg=k)  # fmt: skip
            if k in init and init[k].shape == v.shape:
                moved = max(moved, float((v - init[k]).abs().max()))
    assert moved > 1e-3  # the three steps did change the weights
    # only rank 0 wrote: one run.json, one log with one copy of each line
    log = (tmp_path / "ddp" / "train.log").read_text().splitlines()
    assert sum("world size 2" in line for line in log) == 1
    assert a["state"]["history"][0]["val_loss"] == pytest.approx(
        b["state"]["history"][0]["val_loss"], rel=1e-10
    )


def test_an_ensemble_trains_under_torchrun(tmp_path, tiny_config):
    """Every member on both ranks in one process group (one destroyed and initialised again
    between members hung at member 2)."""
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_config))
    out = tmp_path / "ens"
    _torchrun(tmp_path, ["train", "--data", "builtin:dcdft", "--target", "K_wien2k",
                         "--config", str(tmp_path / "cfg.json"), "--r-cut", "5", "--layers",
                         "2", "--batch-size", "9", "--max-steps", "2", "--ensemble", "2",
                         "--no-progress", "--quiet", "--out", str(out)], timeout=300)  # fmt: skip
    for m in (1, 2):
        state = ck.read(out / f"member-{m}" / "last.pt")
        assert state["world_size"] == 2 and state["state"]["done"]
    report = json.loads((out / "test_metrics.json").read_text())
    assert len(report["calibration"]["K_wien2k"]["member_mae"]) == 2
