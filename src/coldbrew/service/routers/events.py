"""``POST /v1/events``: one event or a batch, stored durably before the response."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends

from coldbrew.service.auth import require_write
from coldbrew.service.errors import ApiError
from coldbrew.service.schemas import AcceptedOut, EventBatch, EventIn, EventsBody
from coldbrew.service.state import ServiceState, State
from coldbrew.storage.event_store import StoredEvent

router = APIRouter(tags=["events"])


@router.post(
    "/v1/events", response_model=AcceptedOut, dependencies=[Depends(require_write)],
    summary="record one event or a batch (durable before the response)",
    responses={404: {"description": "an event names an unknown or deleted item"},
               413: {"description": "body too large"}, 422: {"description": "invalid field"}},
)
def post_events(
    state: State,
    body: Annotated[EventsBody, Body(openapi_examples={
        "one": {"value": {"user_id": "u1", "item_id": "85123A", "event": "click"}},
        "batch": {"value": {"events": [
            {"user_id": "u1", "item_id": "85123A", "event": "purchase", "timestamp": "2026-11-24T10:00:00Z"},
            {"user_id": "u1", "item_id": "71053", "event": "view", "timestamp": 1795000000},
        ]}},
    })],
) -> AcceptedOut:
    events: list[EventIn] = body.events if isinstance(body, EventBatch) else [body]
    single = not isinstance(body, EventBatch)
    if len(events) > state.settings.max_batch:
        raise ApiError(413, f"field 'events': at most {state.settings.max_batch:,} events per request,"
                            f" got {len(events):,}; send smaller batches", "events")
    now = int(time.time())
    bad = _first_bad_item(state, events)
    replicas = state.extras.get("replicas")
    if bad is not None and replicas is not None:
        # The product may have just been added through another replica: catch up, look again.
        with state.catalog_lock:
            replicas.catch_up()
        bad = _first_bad_item(state, events)
    if bad is not None:
        j, what = bad
        field = "item_id" if single else f"events[{j}].item_id"
        raise ApiError(404, f"field '{field}': {what} item '{events[j].item_id}'", field)
    rows = [
        StoredEvent(state.user_key(e.user_id), e.item_id, now if e.timestamp is None else e.timestamp,
                    e.event, e.value)
        for e in events
    ]
    accepted = state.store.append(rows)
    state.metrics.events.inc(accepted)
    return AcceptedOut(accepted=accepted)


def _first_bad_item(state: ServiceState, events: list[EventIn]) -> tuple[int, str] | None:
    """``(index, "unknown" | "deleted")`` of the first event naming an item not in the catalog."""
    with state.lock.read():
        positions = state.model.item_map_.lookup([e.item_id for e in events])
        deleted = state.deleted
        for j, (event, pos) in enumerate(zip(events, positions)):
            if pos < 0 or event.item_id in deleted:
                return j, "deleted" if pos >= 0 else "unknown"
    return None
