"""Checkpoints: what a run saves, how it is written atomically and read back safely.

A checkpoint is a plain ``dict`` of tensors, numbers, strings, lists and dicts, written with
:func:`torch.save` and read with ``torch.load(..., weights_only=True)``: loading never
executes code from the file. Writes go to a temporary file that replaces the target in one
``os.replace``, so an interrupted write never leaves a truncated ``last.pt``.
"""

from __future__ import annotations

import os
import platform
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtalnet.config import NetworkConfig

FORMAT = "xtalnet-checkpoint/1"
#: keys every xtalnet checkpoint has
REQUIRED = ("format", "config", "model")


def versions() -> dict[str, str]:
    """Versions of python, torch, numpy and the repository's packages (for provenance)."""
    out = {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
    }
    from importlib import import_module

    for name in ("xtalnet", "periodic_conv", "rsh", "gaunt_elastic", "mp_audit", "pymatgen"):
        try:
            mod = import_module(name)
        except ImportError:  # pragma: no cover - every one is a dependency
            continue
        out[name] = str(getattr(mod, "__version__", "unknown"))
    return out


# ------------------------------------------------------------------ RNG states
def rng_state() -> dict[str, Any]:
    """Every global RNG state (python, numpy, torch CPU and CUDA) as weights-only data."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "python": [int(py_version), list(py_state), py_gauss],
        "numpy": [
            str(np_name),
            torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            int(np_pos),
            int(np_has_gauss),
            float(np_gauss),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, py_state, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in py_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (str(name), keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached))
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------ read / write
def save(payload: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(dict(payload), tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read an xtalnet checkpoint with ``weights_only=True``.

    Parameters
    ----------
    path : path
        A ``.pt`` file written by ``xtalnet train`` (``last.pt`` / ``best.pt``), or a run
        folder holding ``best.pt`` (then ``last.pt``).
    map_location : device or str
        Where tensors go (default CPU).

    Raises
    ------
    ValueError
        No such file; a truncated or corrupt file; a file holding something other than an
        xtalnet checkpoint (the message says what was found).
    """
    p = Path(path)
    if p.is_dir() and (p / "ensemble.json").is_file():
        raise ValueError(f"checkpoint: folder {str(p)!r} is an ensemble (ensemble.json): name "
                         f"one member's folder here, e.g. {str(p / 'member-1')!r}")  # fmt: skip
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise ValueError(f"checkpoint: folder {str(p)!r} holds neither best.pt nor last.pt")
    if not p.is_file():
        raise ValueError(f"checkpoint: no such file {str(p)!r}")
    with p.open("rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":  # torch.save writes a zip archive; a truncated one starts so too
        raise ValueError(f"checkpoint {str(p)!r} is not a checkpoint at all: torch.save "
                         "writes a zip archive, and this file is none (a CIF, CSV or text "
                         "file?)")  # fmt: skip
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise ValueError(
            f"checkpoint {str(p)!r} cannot be read: the file is truncated or corrupt "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        ) from exc
    except Exception as exc:  # weights_only refuses pickled code objects: UnpicklingError etc.
        raise ValueError(
            f"checkpoint {str(p)!r} is not an xtalnet checkpoint: it holds objects that "
            f"weights_only loading refuses to construct ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]})"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = (
            f"a dict with keys {sorted(map(str, data))[:12]}"
            if isinstance(data, dict)
            else f"a {type(data).__name__}"
        )
        raise ValueError(
            f"checkpoint {str(p)!r} is not an xtalnet checkpoint (format {FORMAT!r}); it "
            f"holds {found}"
        )
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ValueError(f"checkpoint {str(p)!r} lacks the entries {missing}")
    data["path"] = str(p)
    return data


def config_of(ckpt: Mapping[str, Any]) -> NetworkConfig:
    """The :class:`NetworkConfig` a checkpoint was trained with."""
    return NetworkConfig.from_dict(ckpt["config"])


def config_diff(saved: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """Fields that differ between two config/option dicts, as ``"name: saved -> given"``."""
    out = []
    for key in sorted(set(saved) | set(given)):
        a, b = saved.get(key, "<absent>"), given.get(key, "<absent>")
        if isinstance(a, tuple):
            a = list(a)
        if isinstance(b, tuple):
            b = list(b)
        if a != b:
            out.append(f"{key}: {a!r} (checkpoint) vs {b!r} (given)")
    return out
