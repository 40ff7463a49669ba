"""Peak resident memory of one call, for the packages' benchmark scripts (Linux).

A benchmark process calls :func:`reset_peak`, reads :func:`resident_bytes`, runs the step
and reports ``peak_bytes() - before``. Run such processes with
``MALLOC_MMAP_THRESHOLD_=65536`` so that large freed blocks leave the resident set and the
figure is the step's own, not the allocator's cache from earlier steps.
"""

from __future__ import annotations

__all__ = ["peak_bytes", "reset_peak", "resident_bytes"]


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def resident_bytes() -> int:
    """Resident set size now (VmRSS), bytes."""
    return _status("VmRSS")


def peak_bytes() -> int:
    """Peak resident set size since the last :func:`reset_peak` (VmHWM), bytes."""
    return _status("VmHWM")


def reset_peak() -> bool:
    """Reset VmHWM to the current resident set; False where /proc does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
