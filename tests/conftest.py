"""Shared fixtures: tiny input files written into the test's own tmp_path."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` (UTF-8) to ``tmp_path / name``, gzip-compressed when the name ends in .gz."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        data = text.encode("utf-8")
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return path

    return write


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (../shared/data); skips when absent, fails instead when ``CI`` is set.

    The same rule as ``tests/evaluation/conftest.py``, available to every test directory.
    """
    import os

    folder = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    if not folder.is_dir():
        message = f"shared data folder {folder.resolve()} is absent"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: real-data tests must run in CI)")
        pytest.skip(message + " (real-data tests need ../shared/data beside the repository)")
    return folder.resolve()
