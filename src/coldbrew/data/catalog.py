"""The product catalog: loading, validation and the text each product is encoded from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from coldbrew.config import ColumnsConfig
from coldbrew.data._io import location, read_table
from coldbrew.data.schema import ITEM_ALIASES, resolve_columns
from coldbrew.errors import DataError

__all__ = ["Catalog", "LoadReport", "load_catalog", "catalog_from_frame", "concat_catalogs"]


@dataclass
class LoadReport:
    """What a loader kept and dropped, with the first few reasons."""

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {reason}")

    def summary(self) -> str:
        text = f"{self.source}: kept {self.rows_kept:,} of {self.rows_read:,} rows"
        if self.skipped:
            text += " (skipped: " + ", ".join(f"{n:,} {r}" for r, n in self.skipped.items()) + ")"
        return text


@dataclass(frozen=True)
class Catalog:
    """Products, one row each, in a fixed order.

    Arrays have length ``n_items``; strings are ``""`` where unknown and prices ``NaN``.
    ``attributes`` keeps every other column of the input, by the same row order.
    """

    item_ids: np.ndarray  # (n,) object (str)
    titles: np.ndarray  # (n,) object
    descriptions: np.ndarray
    categories: np.ndarray
    brands: np.ndarray
    tags: np.ndarray
    prices: np.ndarray  # (n,) float64
    attributes: pd.DataFrame

    def __len__(self) -> int:
        return len(self.item_ids)

    def texts(self) -> list[str]:
        """The text each product is encoded from: title, brand, category, tags, description."""
        out = []
        for parts in zip(self.titles, self.brands, self.categories, self.tags, self.descriptions):
            seen: list[str] = []
            for part in parts:
                part = str(part).strip()
                if part and part not in seen:
                    seen.append(part)
            out.append(". ".join(seen)[:1000])
        return out

    def subset(self, positions: np.ndarray) -> Catalog:
        """The catalog restricted to the given row positions (in that order)."""
        pos = np.asarray(positions, dtype=np.int64)
        return Catalog(
            item_ids=self.item_ids[pos],
            titles=self.titles[pos],
            descriptions=self.descriptions[pos],
            categories=self.categories[pos],
            brands=self.brands[pos],
            tags=self.tags[pos],
            prices=self.prices[pos],
            attributes=self.attributes.iloc[pos].reset_index(drop=True),
        )

    def to_frame(self) -> pd.DataFrame:
        """All columns as one DataFrame (canonical names first)."""
        frame = pd.DataFrame(
            {
                "item_id": self.item_ids,
                "title": self.titles,
                "description": self.descriptions,
                "category": self.categories,
                "brand": self.brands,
                "tags": self.tags,
                "price": self.prices,
            }
        )
        extra = self.attributes.drop(columns=[c for c in self.attributes if c in frame], errors="ignore")
        return pd.concat([frame, extra.reset_index(drop=True)], axis=1)


def load_catalog(
    path: str | Path,
    columns: ColumnsConfig | None = None,
    on_bad_rows: str = "error",
) -> tuple[Catalog, LoadReport]:
    """Load and validate a catalog file (CSV/CSV.gz, Parquet or JSON Lines).

    Rules: ``item_id`` is required and must be non-empty and unique (a duplicate is an error
    naming both lines, or, with ``on_bad_rows="skip"``, the later row is dropped); a product
    with no text at all is kept (it gets a zero text vector and is found through behaviour
    only); a non-numeric ``price`` is an error (or, when skipping, becomes unknown).
    """
    frame = read_table(path)
    return catalog_from_frame(frame, str(path), columns, on_bad_rows)


def _text_column(frame: pd.DataFrame, found: dict[str, str], name: str) -> np.ndarray:
    if name not in found:
        return np.full(len(frame), "", dtype=object)
    col = frame[found[name]]
    values = col.where(col.notna(), "").map(lambda v: " | ".join(map(str, v)) if isinstance(v, list) else str(v))
    return values.str.strip().to_numpy(dtype=object)


def catalog_from_frame(
    frame: pd.DataFrame,
    source: str = "catalog",
    columns: ColumnsConfig | None = None,
    on_bad_rows: str = "error",
) -> tuple[Catalog, LoadReport]:
    """Validate an in-memory table as a catalog; see :func:`load_catalog`."""
    if on_bad_rows not in ("error", "skip"):
        raise ValueError(f"on_bad_rows: expected 'error' or 'skip', got {on_bad_rows!r}")
    found = resolve_columns(frame, ITEM_ALIASES, ("item_id",), columns or ColumnsConfig(), source)
    if "title" not in found and "description" not in found:
        raise DataError(
            f"{source}: no product text: expected a 'title' (or name/product_name) or a"
            f" 'description' column; the file has: {', '.join(map(str, frame.columns))}"
        )
    report = LoadReport(source=source, rows_read=len(frame))
    keep = np.ones(len(frame), dtype=bool)
    ids = frame[found["item_id"]]
    ids = ids.where(ids.notna(), "").astype(str).str.strip()
    for pos in np.flatnonzero((ids == "").to_numpy()):
        msg = "field item_id is empty"
        if on_bad_rows == "error":
            raise DataError(f"{source}: {location(frame, pos)}: {msg}")
        report.skip(msg, location(frame, pos))
        keep[pos] = False
    dup = ids.duplicated(keep="first").to_numpy() & keep
    if dup.any():
        first_pos = {v: i for i, v in reversed(list(enumerate(ids)))}
        for pos in np.flatnonzero(dup):
            msg = (
                f"duplicate item_id '{ids.iloc[pos]}' (first at"
                f" {location(frame, first_pos[ids.iloc[pos]])})"
            )
            if on_bad_rows == "error":
                raise DataError(f"{source}: {location(frame, pos)}: {msg}")
            report.skip("duplicate item_id", location(frame, pos))
            keep[pos] = False
    prices = np.full(len(frame), np.nan)
    if "price" in found:
        raw = frame[found["price"]]
        parsed = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, copy=True)
        bad = (raw.notna().to_numpy() & ~np.isfinite(parsed)) | (parsed < 0)
        for pos in np.flatnonzero(bad & keep):
            msg = f"field price: expected a non-negative number, got {raw.iloc[pos]!r}"
            if on_bad_rows == "error":
                raise DataError(f"{source}: {location(frame, pos)}: {msg}")
            report.skip("bad price (set to unknown)", location(frame, pos))
        parsed[bad] = np.nan
        prices = parsed
    idx = np.flatnonzero(keep)
    attributes = frame.drop(columns=list(found.values())).iloc[idx].reset_index(drop=True)
    catalog = Catalog(
        item_ids=ids.to_numpy(dtype=object)[idx],
        titles=_text_column(frame, found, "title")[idx],
        descriptions=_text_column(frame, found, "description")[idx],
        categories=_text_column(frame, found, "category")[idx],
        brands=_text_column(frame, found, "brand")[idx],
        tags=_text_column(frame, found, "tags")[idx],
        prices=prices[idx],
        attributes=attributes,
    )
    report.rows_kept = len(catalog)
    return catalog, report


def concat_catalogs(a: Catalog, b: Catalog) -> Catalog:
    """``a``'s products followed by ``b``'s (IDs are not checked for overlap)."""
    return Catalog(
        item_ids=np.concatenate([a.item_ids, b.item_ids]),
        titles=np.concatenate([a.titles, b.titles]),
        descriptions=np.concatenate([a.descriptions, b.descriptions]),
        categories=np.concatenate([a.categories, b.categories]),
        brands=np.concatenate([a.brands, b.brands]),
        tags=np.concatenate([a.tags, b.tags]),
        prices=np.concatenate([a.prices, b.prices]),
        attributes=pd.concat([a.attributes, b.attributes], ignore_index=True),
    )
