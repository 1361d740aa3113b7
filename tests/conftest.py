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
