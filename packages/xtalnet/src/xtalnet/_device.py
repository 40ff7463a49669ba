"""The ``device`` argument of every command, checked once: ``"auto"``, ``"cpu"``, ``"cuda"``
or ``"cuda:N"`` on a torch that has that device."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None, name: str = "--device") -> torch.device:
    """The torch device for ``device`` (``None`` / ``"auto"``: CUDA when available, else CPU).

    Raises
    ------
    ValueError
        An unknown device (``"tpu"``), or CUDA asked for on a torch without it, naming
        ``name`` and what is allowed.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"{name} {device!r} is not a device; allowed: auto, cpu, cuda, cuda:N"
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} {device!r}: xtalnet runs on auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name} {device!r}: this torch has no usable CUDA device "
                f"(torch {torch.__version__}, torch.cuda.is_available() is False); use cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"{name} {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    return dev
