"""The catalog: add (one or a batch), patch, delete, browse, look up, similar items.

Writes are stored first (durable), then applied to the live model under its write lock: a new
product is recommendable in the very next request; a deleted or out-of-stock one is blocked
from every list at once.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, Path, Query

from coldbrew.service.auth import require_read, require_write
from coldbrew.service.errors import ApiError
from coldbrew.service.routers.users import check_k
from coldbrew.service.schemas import (
    CatalogOut,
    ItemBatch,
    ItemDetailOut,
    ItemIn,
    ItemPatch,
    ItemsBody,
    ItemsWrittenOut,
    SimilarOut,
)
from coldbrew.service.state import (
    ServiceState,
    State,
    catalog_from_records,
    item_change,
    item_record_of,
)
from coldbrew.storage.event_store import ItemRecord

router = APIRouter(tags=["items"])

ItemId = Annotated[str, Path(min_length=1, max_length=256, description="the shop's item ID")]
_MAX_PAGE = 500


def _tags_text(tags: list[str]) -> str:
    return " | ".join(t.strip() for t in tags if t.strip())


def _record(item: ItemIn) -> ItemRecord:
    fields = {
        "title": item.title, "description": item.description, "category": item.category,
        "brand": item.brand, "price": item.price, "tags": _tags_text(item.tags),
    }
    return ItemRecord(item.item_id, fields, in_stock=item.in_stock)


def _live_position(state: ServiceState, item_id: str) -> int:
    pos = state.item_position(item_id)
    if pos < 0:
        what = "deleted" if item_id in state.deleted else "unknown"
        raise ApiError(404, f"{what} item '{item_id}'", "item_id")
    return pos


def _catch_up(state: ServiceState) -> None:
    """Apply other replicas' catalog changes first (hold ``catalog_lock``), so that a PATCH
    merges into the item's latest state, not one a moment old."""
    replicas = state.extras.get("replicas")
    if replicas is not None:
        replicas.catch_up()


class _Write:
    __slots__ = ("records", "ids", "done", "counts", "error")

    def __init__(self, records: list[ItemRecord]) -> None:
        self.records = records
        self.ids = {r.item_id for r in records}
        self.done = False
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None


class ItemWrites:
    """Group commit of ``POST /v1/items``: writes queued while another is being applied share
    one store commit, one model update under the write lock and one message to the scoring
    process.

    Adding a product costs the model about the same for one item as for ten (the catalog's
    arrays are copied once per call), in this process and again in the scoring process, and
    readers wait for it; under load, posts then queue behind each other. Each post is still
    answered only once its own records are committed and applied, with its own counts: a
    group holds posts with disjoint item IDs only (taken in arrival order), so every post
    sees what it would have seen alone, and a failure fails each post of the group (each
    post's records are stored all or none, as before).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Write] = []

    def write(self, state: ServiceState, records: list[ItemRecord]) -> dict[str, int]:
        mine = _Write(records)
        with self._lock:
            self._queue.append(mine)
        with state.catalog_lock:  # whoever holds it applies what is queued, its own post included
            while not mine.done:
                self._apply(state, self._take())
        if mine.error is not None:
            raise mine.error
        return mine.counts

    def _take(self) -> list[_Write]:
        """The oldest queued posts whose item IDs do not overlap (at least one)."""
        with self._lock:
            group, ids = [], set()
            for write in self._queue:
                if ids & write.ids:
                    break
                group.append(write)
                ids |= write.ids
            self._queue = self._queue[len(group):]
        return group

    @staticmethod
    def _apply(state: ServiceState, group: list[_Write]) -> None:
        try:
            state.store.save(items=[r for w in group for r in w.records])  # durable first; readers go on
            follow: list = []
            with state.lock.write():
                for w in group:  # each post's own counts, as if applied alone (their IDs are disjoint)
                    latest = {r.item_id: r for r in w.records}
                    changes = [item_change(state.model, r) for r in latest.values()]
                    w.counts = {"added": changes.count("added"), "updated": changes.count("updated")}
                state.apply_items(state.model, [r for w in group for r in w.records], follow)
            for wait in follow:  # the scoring process has them before the answer, not under the lock
                wait()
        except BaseException as exc:
            for w in group:
                w.error = exc
        finally:
            for w in group:
                w.done = True


def _item_writes(state: ServiceState) -> ItemWrites:
    writes = state.extras.get("item_writes")
    if writes is None:
        writes = state.extras.setdefault("item_writes", ItemWrites())
    return writes


def _detail(state: ServiceState, pos: int) -> ItemDetailOut:
    record = item_record_of(state.model, pos, in_stock=state.in_stock.get(str(state.model.catalog_.item_ids[pos]), True))
    f = record.fields
    tags = [t.strip() for t in str(f["tags"]).split("|") if t.strip()]
    return ItemDetailOut(item_id=record.item_id, title=f["title"], description=f["description"],
                         category=f["category"], brand=f["brand"], price=f["price"], tags=tags,
                         in_stock=record.in_stock)


@router.post(
    "/v1/items", response_model=ItemsWrittenOut, status_code=201, dependencies=[Depends(require_write)],
    summary="add or replace one product or a batch (recommendable in the next request)",
)
def post_items(
    state: State,
    body: Annotated[ItemsBody, Body(openapi_examples={
        "one": {"value": {"item_id": "N1", "title": "Bamboo lunch box", "category": "Kitchen", "price": 9.5}},
    })],
) -> ItemsWrittenOut:
    items = body.items if isinstance(body, ItemBatch) else [body]
    if len(items) > state.settings.max_batch:
        raise ApiError(413, f"field 'items': at most {state.settings.max_batch:,} items per request", "items")
    records = [_record(i) for i in items]
    # Encode the texts now, outside every lock: the model's embedding cache then answers
    # inside the write lock, which readers wait for.
    state.model.encode(catalog_from_records(records).texts())
    counts = _item_writes(state).write(state, records)
    state.metrics.items.labels("added").inc(counts["added"])
    state.metrics.items.labels("updated").inc(counts["updated"])
    state.metrics.model_items.set(len(state.model.item_map_))
    return ItemsWrittenOut(accepted=len(records), added=counts["added"], updated=counts["updated"])


@router.patch(
    "/v1/items/{item_id}", response_model=ItemDetailOut, dependencies=[Depends(require_write)],
    summary="change some fields of a product (e.g. price, in_stock)",
)
def patch_item(state: State, item_id: ItemId, body: ItemPatch) -> ItemDetailOut:
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if not changes:
        raise ApiError(422, "field 'body': no fields to change", "body")
    if "title" in changes and changes["title"] is None:
        raise ApiError(422, "field 'title': must not be null", "title")
    with state.catalog_lock:  # read-merge-store-apply of one item is atomic among writers
        _catch_up(state)
        with state.lock.read():
            pos = _live_position(state, item_id)
            current = item_record_of(state.model, pos, in_stock=state.in_stock.get(item_id, True))
        fields = dict(current.fields)
        in_stock = changes.pop("in_stock", None)
        if "tags" in changes:
            changes["tags"] = _tags_text(changes["tags"] or [])
        for name, value in changes.items():
            fields[name] = "" if value is None and name != "price" else value
        record = ItemRecord(item_id, fields, in_stock=current.in_stock if in_stock is None else in_stock)
        state.store.save(items=[record])
        follow: list = []
        with state.lock.write():
            state.apply_items(state.model, [record], follow)
            detail = _detail(state, state.item_position(item_id))
        for wait in follow:
            wait()
    state.metrics.items.labels("updated").inc()
    return detail


@router.delete(
    "/v1/items/{item_id}", dependencies=[Depends(require_write)],
    summary="delete a product: it never appears in any list again",
)
def delete_item(state: State, item_id: ItemId) -> dict[str, Any]:
    with state.catalog_lock:
        _catch_up(state)
        with state.lock.read():
            pos = _live_position(state, item_id)
            current = item_record_of(state.model, pos, in_stock=state.in_stock.get(item_id, True))
        record = ItemRecord(item_id, current.fields, in_stock=current.in_stock, deleted=True)
        state.store.save(items=[record])
        follow: list = []
        with state.lock.write():
            state.apply_items(state.model, [record], follow)
        for wait in follow:
            wait()
    state.metrics.items.labels("deleted").inc()
    return {"item_id": item_id, "deleted": True}


@router.get(
    "/v1/items", response_model=CatalogOut, dependencies=[Depends(require_read)],
    summary="browse and search the catalog (case-insensitive words in ID, title or category)",
)
def list_items(
    state: State,
    q: Annotated[str | None, Query(max_length=200, description="words to look for")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1)] = 50,
) -> CatalogOut:
    if limit > _MAX_PAGE:
        raise ApiError(422, f"field 'limit': must be at most {_MAX_PAGE}, got {limit}", "limit")
    with state.lock.read():
        model = state.model
        view = state.item_view()
        keep = ~view.deleted
        words = (q or "").lower().split()
        if words:
            texts = state.search_texts()
            keep &= np.fromiter((all(w in t for w in words) for t in texts), dtype=bool, count=len(keep))
        positions = np.flatnonzero(keep)
        page = positions[offset: offset + limit]
        c = model.catalog_
        out = []
        for pos in page:
            item_id = str(c.item_ids[pos])
            price = float(c.prices[pos])
            out.append({"item_id": item_id, "title": str(c.titles[pos]), "category": str(c.categories[pos]),
                        "price": price if np.isfinite(price) else None,
                        "in_stock": state.in_stock.get(item_id, True)})
    return CatalogOut(total=len(positions), items=out)


@router.get(
    "/v1/items/{item_id}", response_model=ItemDetailOut, dependencies=[Depends(require_read)],
    summary="one product",
)
def get_item(state: State, item_id: ItemId) -> ItemDetailOut:
    with state.lock.read():
        return _detail(state, _live_position(state, item_id))


@router.get(
    "/v1/items/{item_id}/similar", response_model=SimilarOut, dependencies=[Depends(require_read)],
    summary="products similar to one product (bought together, same shoppers, similar text)",
)
def similar(
    state: State,
    item_id: ItemId,
    k: Annotated[int, Query(ge=1, description="list length (at most max_k)")] = 10,
) -> SimilarOut:
    check_k(state, k)
    with state.lock.read():
        model = state.model
        _live_position(state, item_id)
        view = state.item_view()
        blocked = view.blocked
        # Blocked items are dropped after ranking: ask for enough to still have k.
        result = model.similar(item_id, min(k + int(blocked.sum()), len(blocked)))
        positions = model.item_map_.lookup(result.items)
        keep = [j for j, p in enumerate(positions) if not blocked[p]][:k]
        result.items[:] = [result.items[j] for j in keep]
        result.scores[:] = [result.scores[j] for j in keep]
        result.reasons[:] = [result.reasons[j] for j in keep]
        items = state.item_outs(model, result)
    return SimilarOut(item_id=item_id, items=items)
