"""Canonical column names and the aliases real shops use for them."""

from __future__ import annotations

import pandas as pd

from coldbrew.config import ColumnsConfig
from coldbrew.errors import DataError

__all__ = ["ITEM_ALIASES", "EVENT_ALIASES", "resolve_columns"]

_ITEM_ID = ("item_id", "itemid", "product_id", "productid", "sku", "stockcode", "stock_code",
            "asin", "movie_id", "movieid")
ITEM_ALIASES: dict[str, tuple[str, ...]] = {
    "item_id": (*_ITEM_ID, "id"),
    "title": ("title", "name", "product_name", "product_title", "item_name"),
    "description": ("description", "desc", "body", "details", "summary"),
    "category": ("category", "categories", "category_path", "genres", "genre"),
    "brand": ("brand", "manufacturer", "vendor"),
    "price": ("price", "unit_price", "price_gbp_median", "list_price", "sale_price"),
    "tags": ("tags", "keywords", "labels"),
}
EVENT_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userid", "customer_id", "customerid", "visitor_id", "visitorid",
                "member_id", "buyer_id"),
    "item_id": _ITEM_ID,
    "timestamp": ("timestamp", "ts", "time", "event_time", "datetime", "date", "created_at"),
    "event": ("event", "event_type", "action", "behavior", "behaviour", "type"),
    "value": ("value", "rating", "quantity", "qty", "score"),
}


def resolve_columns(
    frame: pd.DataFrame,
    aliases: dict[str, tuple[str, ...]],
    required: tuple[str, ...],
    mapping: ColumnsConfig,
    source: str,
) -> dict[str, str]:
    """Return ``{canonical: column in frame}`` for every canonical name that can be found.

    An explicit mapping wins over aliases; a mapped column that is absent, or a required
    column that cannot be found, raises ``DataError`` listing what the file has.
    """
    lower = {str(c).strip().lower(): c for c in frame.columns}
    explicit = mapping.explicit()
    found: dict[str, str] = {}
    for canonical, names in aliases.items():
        if canonical in explicit:
            wanted = explicit[canonical]
            if wanted not in frame.columns and wanted.lower() not in lower:
                raise DataError(
                    f"{source}: column '{wanted}' (mapped to {canonical} in the config) is missing;"
                    f" the file has: {', '.join(map(str, frame.columns))}"
                )
            found[canonical] = wanted if wanted in frame.columns else lower[wanted.lower()]
            continue
        for name in names:
            if name in lower and lower[name] not in found.values():
                found[canonical] = lower[name]
                break
    missing = [c for c in required if c not in found]
    if missing:
        hints = "; ".join(f"{m} (accepted names: {', '.join(aliases[m][:5])})" for m in missing)
        raise DataError(
            f"{source}: missing required column(s): {hints}. The file has:"
            f" {', '.join(map(str, frame.columns))}. Rename the column or map it in the config"
            f" file's [columns] section."
        )
    return found
