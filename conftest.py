"""Hypothesis profiles for every package's tests, written once.

pytest loads this file for every test run from the repository (``-c pyproject.toml``
makes the repository root the rootdir, and the ``isolated`` sessions copy the tests
under ``.nox/`` inside it). ``HYPOTHESIS_PROFILE`` picks the profile: ``ci``
(derandomised, as ``.ci/run`` sets it) or ``dev`` (the default).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
