"""Product search: ``GET /v1/search?q=&user_id=&k=&mode=``.

Hybrid BM25 + text-vector search (see ``coldbrew.search``), re-ranked by the user's stored
history and onboarding words when ``user_id`` is given. The search index is built on first
use and kept in the service state; it follows the live model: a hot-swapped model gets a new
index, and any catalog change (added, patched, deleted, out-of-stock products) is picked up
by the next search (new texts tokenised, BM25 rebuilt, new vectors appended). Deleted and
out-of-stock products are never returned.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from coldbrew.service.auth import require_read
from coldbrew.service.errors import ApiError
from coldbrew.service.routers.users import check_k
from coldbrew.service.schemas import ItemOut
from coldbrew.service.state import ServiceState, State

router = APIRouter(tags=["search"])

_KEY = "search"
_LOCK_KEY = "search_lock"


class SearchOut(BaseModel):
    """Search results, best first."""

    query: str
    mode: str
    items: list[ItemOut]


@dataclass
class _Cached:
    model: Any  # the Recommender the index was built on
    view: Any  # the state's item view it last synced with (a new one after catalog changes)
    index: Any  # the SearchIndex


def search_index(state: ServiceState) -> Any:
    """The state's ``SearchIndex`` for the active model, synced with the catalog (hold ``lock.read()``)."""
    from coldbrew.search import SearchIndex

    lock = state.extras.setdefault(_LOCK_KEY, threading.Lock())
    with lock:
        view = state.item_view()
        cached = state.extras.get(_KEY)
        if cached is None or cached.model is not state.model:
            cached = _Cached(state.model, view, SearchIndex.build(state.model))
            state.extras[_KEY] = cached
        elif cached.view is not view:
            # the catalog changed, possibly in place (PATCH): compare texts and vectors
            cached.index.refresh(force=True)
            cached.view = view
        return cached.index


@router.get(
    "/v1/search", response_model=SearchOut, dependencies=[Depends(require_read)],
    summary="search products (BM25 + text vectors, fused), personalised when user_id is given",
)
def search(
    state: State,
    q: Annotated[str, Query(min_length=1, max_length=500, description="search text (English, Chinese, ...)")],
    user_id: Annotated[str | None, Query(min_length=1, max_length=256,
                                         description="re-rank the results for this user's history")] = None,
    k: Annotated[int, Query(ge=1, description="list length (at most max_k)")] = 10,
    mode: Annotated[Literal["hybrid", "lexical", "semantic"],
                    Query(description="hybrid (default), lexical (BM25 only) or semantic (text vectors only)")] = "hybrid",
) -> SearchOut:
    if not q.strip():
        raise ApiError(422, "field 'q': the search text is empty", "q")
    check_k(state, k)
    history = state.history(user_id) if user_id else None
    with state.lock.read():
        index = search_index(state)
        profiles = None
        if user_id:
            profiles = [state.request_for(user_id, history)]
        hits = index.search([q], k, mode, profiles, exclude=state.item_view().blocked)[0]
        items = index.describe(hits)
    return SearchOut(query=q, mode=mode, items=items)
