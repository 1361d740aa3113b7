"""Fixtures shared by the evaluation tests: the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# tests/evaluation/conftest.py -> repository root is parents[2]; shared/ sits beside it.
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips when absent, fails instead when ``CI`` is set."""
    if not SHARED_DATA.is_dir():
        message = f"shared data folder {SHARED_DATA.resolve()} is absent"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: real-data tests must run in CI)")
        pytest.skip(message + " (real-data tests need ../shared/data beside the repository)")
    return SHARED_DATA.resolve()
