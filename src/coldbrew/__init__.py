"""coldbrew: cold-start-first product recommendations from text encoders + collaborative filtering."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("coldbrew")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.1.0"

__all__ = ["__version__"]
