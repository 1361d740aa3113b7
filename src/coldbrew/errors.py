"""The exceptions users catch.

Every message says what was wrong and where (file, line, field) so that the CLI can print it
as a single actionable line.
"""

from __future__ import annotations

__all__ = [
    "ColdbrewError",
    "DataError",
    "ConfigError",
    "NotFittedError",
    "UnknownIdError",
    "ModelFormatError",
]


class ColdbrewError(Exception):
    """Base class of every error coldbrew raises on purpose."""


class DataError(ColdbrewError, ValueError):
    """An input file or record is malformed (names the file, line and field)."""


class ConfigError(ColdbrewError, ValueError):
    """A configuration file or value is invalid."""


class NotFittedError(ColdbrewError, RuntimeError):
    """A model was used before ``fit`` (or loaded from an incomplete directory)."""


class UnknownIdError(ColdbrewError, KeyError):
    """A raw user or item ID is not known to the model."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class ModelFormatError(ColdbrewError, ValueError):
    """A model directory is missing, damaged or written by an incompatible version."""
