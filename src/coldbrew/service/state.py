"""What the running service holds: the active model, the store, the catalog overlay.

The model is shared by many worker threads. Readers (recommendations) hold a shared lock;
catalog changes and the hot swap after a retrain hold it exclusively and are short (an
added item is encoded in a few milliseconds), so no request ever sees a half-updated model
and none fails during a swap.

Size (about 480 lines): the model, its lock, the catalog overlay and the paths that change
them together under that lock.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from fastapi import Depends
from starlette.requests import Request as HTTPRequest

from coldbrew.requests import HistoryEvent, Request
from coldbrew.service.settings import ServiceSettings
from coldbrew.storage.event_store import ITEM_FIELDS, EventStore, ItemRecord, UserHistory

log = logging.getLogger("coldbrew.service")

__all__ = [
    "ServiceState",
    "State",
    "ModelLock",
    "get_state",
    "catalog_from_records",
    "item_record_of",
    "item_change",
    "update_model_items",
    "prepare_model",
    "freeze_heap",
]


class ModelLock:
    """A readers-writer lock that prefers writers (a swap is never starved by a busy API)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@dataclass
class _ItemView:
    """Per-model item state the API needs on every request, rebuilt on catalog changes.

    Arrays are aligned with the model's item indices.
    """

    blocked: np.ndarray  # (n_items,) bool: deleted or out of stock
    deleted: np.ndarray  # (n_items,) bool
    categories: np.ndarray  # (n_items,) object, lower-case category paths
    blocked_ids: tuple[str, ...] = ()
    search_texts: np.ndarray | None = None  # (n_items,) object, built on first catalog search


@dataclass
class ServiceState:
    """The service's shared state (``app.state.coldbrew``).

    Attributes
    ----------
    settings: the :class:`ServiceSettings`.
    store: the :class:`~coldbrew.storage.event_store.EventStore`.
    model: the active :class:`~coldbrew.pipeline.Recommender` (swapped by a retrain).
    model_version: name of the active model version (``v0`` for the model directory itself).
    metrics: the app's :class:`~coldbrew.service.metrics.ServiceMetrics`.
    retrainer: the :class:`~coldbrew.service.retrain.Retrainer`.
    batcher: the :class:`~coldbrew.service.batching.RecommendBatcher` (concurrent requests
        share one batched model call).
    lock: guards ``model``: hold ``lock.read()`` while using it (not re-entrant: never take
        it twice in one thread, e.g. do not call ``batcher.recommend`` while holding it).
    catalog_lock: serialises catalog writes (read-merge-store-apply of an item) without
        blocking readers during the store's commit.
    extras: room for other routers' per-app objects (search indexes, ...); on a shared
        PostgreSQL store ``extras["replicas"]`` is the
        :class:`~coldbrew.service.replicas.ReplicaFollower` keeping this replica in line.
    scorer: the :class:`~coldbrew.service.scoring.ScoringProcess` replica scoring the
        batches on another core, or ``None`` (scored in this process).
    """

    settings: ServiceSettings
    store: EventStore
    model: Any
    model_version: str
    metrics: Any = None
    retrainer: Any = None
    batcher: Any = None
    lock: ModelLock = field(default_factory=ModelLock)
    catalog_lock: threading.Lock = field(default_factory=threading.Lock)
    in_stock: dict[str, bool] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    extras: dict[str, Any] = field(default_factory=dict)
    scorer: Any = None
    _view: _ItemView | None = None

    # ------------------------------------------------------------------ users
    def user_key(self, user_id: str) -> str:
        """The ID a user is stored under: HMAC-SHA256 of the raw ID when a key is configured."""
        key = self.settings.pseudonymise_key
        if not key:
            return user_id
        return hmac.new(key.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def history(self, user_id: str, limit: int | None = None) -> UserHistory:
        """A user's stored events (latest first) and onboarding profile, by raw user ID."""
        return self.store.history(self.user_key(user_id), limit or self.settings.history_limit)

    def request_for(
        self,
        user_id: str,
        history: UserHistory | None = None,
        text: str | None = None,
        exclude: Sequence[str] = (),
        candidates: Sequence[str] | None = None,
    ) -> Request:
        """A pipeline ``Request`` with the user's stored history folded in (no retraining).

        The onboarding profile's words join ``text``; blocked (deleted or out-of-stock) items
        are excluded unless ``candidates`` already leaves them out.
        """
        if history is None:
            history = self.history(user_id)
        words = [text] if text else []
        if history.profile is not None:
            words += [history.profile.text, *history.profile.categories]
        joined = " ".join(w for w in words if w and w.strip()) or None
        events = tuple(
            HistoryEvent(e.item_id, int(e.timestamp), e.event, e.value)
            for e in reversed(history.events)
        )
        view = self.item_view()
        blocked = () if candidates is not None else view.blocked_ids
        return Request(
            request_id=user_id, user_id=user_id, history=events, text=joined,
            candidates=None if candidates is None else tuple(candidates),
            exclude=tuple(exclude) + blocked,
        )

    # ------------------------------------------------------------------ responses
    def item_outs(self, model: Any, recommendation: Any) -> list[dict[str, Any]]:
        """``ItemOut`` dicts (item_id, title, category, price, score, reason) of a result.

        Items deleted or out of stock by now are left out: a batch prepared before a DELETE
        (or an out-of-stock PATCH) was answered may still hold them, and once that write is
        acknowledged the product must not be shown (the answer is then one item shorter).
        """
        if not recommendation.items:
            return []
        c = model.catalog_
        positions = model.item_map_.lookup(recommendation.items)
        deleted, in_stock = self.deleted, self.in_stock
        out = []
        for item_id, pos, score, reason in zip(
            recommendation.items, positions, recommendation.scores, recommendation.reasons
        ):
            if item_id in deleted or not in_stock.get(item_id, True):
                continue
            price = float(c.prices[pos])
            out.append({
                "item_id": item_id, "title": str(c.titles[pos]), "category": str(c.categories[pos]),
                "price": price if np.isfinite(price) else None,
                "score": round(float(score), 6), "reason": reason,
            })
        return out

    # ------------------------------------------------------------------ items
    def item_view(self) -> _ItemView:
        """Blocked and deleted masks and lower-case categories of the active model's items."""
        view = self._view
        if view is None or len(view.blocked) != len(self.model.item_map_):
            view = self._build_view()
        return view

    def _build_view(self) -> _ItemView:
        model = self.model
        n = len(model.item_map_)
        deleted = np.zeros(n, dtype=bool)
        blocked = np.zeros(n, dtype=bool)
        ids = set(self.deleted) | {i for i, ok in self.in_stock.items() if not ok}
        for item_id in ids:
            pos = model.item_map_.lookup([item_id])[0]
            if pos >= 0:
                blocked[pos] = True
                deleted[pos] = item_id in self.deleted
        categories = np.array([str(c).lower() for c in model.catalog_.categories], dtype=object)
        view = _ItemView(blocked, deleted, categories, tuple(model.item_map_.ids(np.flatnonzero(blocked))))
        self._view = view
        return view

    def search_texts(self) -> np.ndarray:
        """Lower-case "id title category brand" of every item, for catalog search."""
        view = self.item_view()
        if view.search_texts is None:
            c = self.model.catalog_
            view.search_texts = np.array(
                [f"{i} {t} {cat} {b}".lower() for i, t, cat, b in zip(c.item_ids, c.titles, c.categories, c.brands)],
                dtype=object,
            )
        return view.search_texts

    def invalidate_items(self) -> None:
        """Forget the cached item view (after any catalog change or a swap)."""
        self._view = None

    def item_position(self, item_id: str) -> int:
        """Dense index of a live (not deleted) item, or -1."""
        pos = int(self.model.item_map_.lookup([item_id])[0])
        if pos < 0 or item_id in self.deleted:
            return -1
        return pos

    def candidates(self, category: str | None, max_price: float | None) -> tuple[str, ...] | None:
        """Item IDs passing the filters (live, in stock); ``None`` when there is no filter."""
        if category is None and max_price is None:
            return None
        view = self.item_view()
        keep = ~view.blocked
        if category is not None:
            needle = category.strip().lower()
            keep &= np.fromiter((needle in c for c in view.categories), dtype=bool, count=len(keep))
        if max_price is not None:
            prices = np.asarray(self.model.catalog_.prices, dtype=np.float64)
            keep &= np.isfinite(prices) & (prices <= max_price)
        return tuple(self.model.item_map_.ids(np.flatnonzero(keep)))

    def holds(self, record: ItemRecord) -> bool:
        """Whether the active model and overlay already match an item record (hold ``lock.read()``).

        A replica skips the records it wrote itself (or already followed) this way.
        """
        item_id = record.item_id
        if record.deleted:
            return item_id in self.deleted and self.in_stock.get(item_id, True) == record.in_stock
        pos = int(self.model.item_map_.lookup([item_id])[0])
        if pos < 0 or item_id in self.deleted or self.in_stock.get(item_id, True) != record.in_stock:
            return False
        return item_record_of(self.model, pos).fields == _complete(record.fields)

    def apply_items(self, model: Any, records: Sequence[ItemRecord],
                    follow: list[Any] | None = None) -> dict[str, int]:
        """Bring ``model`` and the overlay up to date with item records (hold ``lock.write()``).

        New live items are added to the model (recommendable at once), changed ones updated
        in place; deleted and out-of-stock items are blocked. Returns counts by outcome.

        ``follow``: a list, to let the scoring process apply the records beside this process
        rather than after it. They are sent to it first, under the write lock, so every batch
        sent after them is scored with them (its calls are answered in order), and it applies
        them while this process does; a function that waits for its acknowledgement is
        appended to ``follow``: call each after releasing the write lock and before
        answering. Without ``follow`` the acknowledgement is awaited here, at the end, while
        readers wait for the replica's own ``add_items`` too.
        """
        latest: dict[str, ItemRecord] = {}
        for record in records:
            latest[record.item_id] = record
        scorer = self.scorer if model is self.model and latest else None
        if scorer is None or follow is None:
            return self._apply_items(model, latest)
        payload = list(latest.values())
        follow.append(self.replicate_sent(lambda s: s.send_apply(payload)))
        try:
            return self._apply_items(model, latest, replicate=False)
        except BaseException as exc:  # the replica has records this process failed to apply
            self._retire(scorer, exc)
            raise

    def _apply_items(self, model: Any, latest: dict[str, ItemRecord], replicate: bool = True) -> dict[str, int]:
        new, changed = [], []
        for record in latest.values():
            if record.deleted:
                self.deleted.add(record.item_id)
            else:
                self.deleted.discard(record.item_id)
            self.in_stock[record.item_id] = record.in_stock
            change = item_change(model, record)
            if change == "added":
                new.append(record)
            elif change == "updated":
                changed.append(record)
        added = updated = 0
        if new:
            added = model.add_items(catalog_from_records(new))
        if changed:
            updated = update_model_items(model, catalog_from_records(changed))
        self.invalidate_items()
        if replicate and self.scorer is not None and model is self.model and latest:  # the replica follows every record
            self.replicate(lambda scorer: scorer.apply(list(latest.values())))
        return {"added": added, "updated": updated}

    def replicate(self, call: Any) -> None:
        """Run ``call(scorer)`` on the scoring replica; any failure retires it (this process scores)."""
        scorer = self.scorer
        if scorer is None:
            return
        try:
            call(scorer)
        except Exception as exc:
            self._retire(scorer, exc)

    def replicate_sent(self, send: Any) -> Any:
        """``send(scorer)`` (which returns the call's slot) now; returns a function that waits
        for the answer, to call without holding ``lock``: a failure then retires the replica
        under the write lock."""
        scorer = self.scorer
        if scorer is None:
            return lambda: None
        try:
            slot = send(scorer)
        except Exception as exc:
            self._retire(scorer, exc)
            return lambda: None

        def wait() -> None:
            try:
                scorer.wait(slot)
            except Exception as exc:
                with self.lock.write():
                    self._retire(scorer, exc)

        return wait

    def _retire(self, scorer: Any, exc: BaseException) -> None:
        log.warning("the scoring process could not follow a change (%s); scoring in the server process", exc)
        if self.scorer is scorer:
            self.scorer = None
        scorer.close()


def prepare_model(model: Any) -> None:
    """Warm a model up before it serves: load the encoder and score one request.

    Requests are scored in batches of at most 32; the ALS fold-in reads only each user's own
    items' factors (no per-catalog cache), so adding a product rebuilds nothing there. The
    text-neighbour lists of shelf requests are not built here (see README, shelves).
    """
    model.encoder.encode(["warm-up"])
    if len(model.item_map_) == 0:
        return
    first = model.item_map_.ids([0])[0]
    model.recommend([Request("warm-up", "", history=(HistoryEvent(first, int(model.now_), "view"),))], 1)


def freeze_heap() -> None:
    """Move everything loaded so far (the model's object arrays, the encoder) out of the
    garbage collector's reach: its full collections then scan only what requests allocate.
    Call once a long-lived model is loaded (the server, the scoring process)."""
    import gc

    gc.collect()
    gc.freeze()


def update_model_items(model: Any, catalog: Any) -> int:
    """Replace the text, category and price of items already in ``model``; no retraining.

    A product without interactions gets new bridged CF factors and popularity from its new
    text (as ``add_items`` would give it); one with interactions keeps its learned factors and
    gets a new text vector. Items unknown to the model are ignored. Returns how many changed.
    Hold the model's write lock.
    """
    positions = model.item_map_.lookup(catalog.item_ids)
    known = positions >= 0
    if not known.any():
        return 0
    positions, rows = positions[known], np.flatnonzero(known)
    for name in ("titles", "descriptions", "categories", "brands", "tags", "prices"):
        getattr(model.catalog_, name)[positions] = getattr(catalog, name)[rows]
    model.text_vectors_[positions] = model.encode(catalog.subset(rows).texts())
    model._indexes = {}  # vectors changed in place: ANN indexes are rebuilt on next use
    model._neighbors = None  # and so are the new items' text neighbours
    model._fill_cold_items(positions[~model.item_warm_[positions]])  # also resets cached statistics
    return int(len(positions))


def item_change(model: Any, record: ItemRecord) -> str | None:
    """What :meth:`ServiceState.apply_items` does to ``model`` with one record: ``"added"``
    (a live item it does not hold), ``"updated"`` (a live item whose fields differ) or
    ``None`` (a deletion, or nothing changes in the model)."""
    if record.deleted:
        return None
    pos = int(model.item_map_.lookup([record.item_id])[0])
    if pos < 0:
        return "added"
    return "updated" if item_record_of(model, pos).fields != _complete(record.fields) else None


def _complete(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {name: "" for name in ITEM_FIELDS}
    out["price"] = None
    out.update({k: v for k, v in fields.items() if k in ITEM_FIELDS})
    return out


def item_record_of(model: Any, pos: int, in_stock: bool = True) -> ItemRecord:
    """The item at dense index ``pos`` of a model, as a record (for PATCH and comparisons)."""
    c = model.catalog_
    price = float(c.prices[pos])
    fields = {
        "title": str(c.titles[pos]), "description": str(c.descriptions[pos]),
        "category": str(c.categories[pos]), "brand": str(c.brands[pos]),
        "price": price if np.isfinite(price) else None, "tags": str(c.tags[pos]),
    }
    return ItemRecord(str(c.item_ids[pos]), fields, in_stock=in_stock)


def catalog_from_records(records: Sequence[ItemRecord]):
    """A :class:`~coldbrew.data.catalog.Catalog` of item records (IDs unique, fields validated).

    Built directly (no table parsing): adding one product must take milliseconds.
    """
    import pandas as pd

    from coldbrew.data.catalog import Catalog

    completed = [_complete(r.fields) for r in records]

    def column(name: str) -> np.ndarray:
        return np.array([str(f[name] or "").strip() for f in completed], dtype=object)

    prices = np.array([np.nan if f["price"] is None else float(f["price"]) for f in completed], dtype=np.float64)
    return Catalog(
        item_ids=np.array([r.item_id for r in records], dtype=object),
        titles=column("title"), descriptions=column("description"), categories=column("category"),
        brands=column("brand"), tags=column("tags"), prices=prices,
        attributes=pd.DataFrame(index=pd.RangeIndex(len(records))),
    )


async def get_state(request: HTTPRequest) -> ServiceState:
    """FastAPI dependency: the :class:`ServiceState` of the app serving ``request``."""
    return request.app.state.coldbrew


# Use as a parameter annotation in endpoints: ``def endpoint(state: State, ...)``.
State = Annotated[ServiceState, Depends(get_state)]
