"""Engagement analytics: ``GET /v1/analytics`` and ``GET /v1/analytics/users/{user_id}/churn``.

Both read the events in the service's event store (``EventStore.snapshot``); results are
cached until the store holds a different number of events. With an empty store the summary
falls back to ``<report_dir>/analytics.json`` written by ``coldbrew analytics`` (if any), else
it is ``{"events": 0, "users": 0, ...}`` with a note.
Churn risk comes from a model trained ``horizon_days`` before the last stored event and
applied to everyone active in the year before it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel

from coldbrew.errors import DataError
from coldbrew.service.auth import require_read
from coldbrew.service.errors import ApiError
from coldbrew.service.state import ServiceState, State

router = APIRouter(tags=["analytics"])

_KEY = "analytics"
_LOCK_KEY = "analytics_lock"


class ChurnOut(BaseModel):
    user_id: str
    churn_risk: float
    horizon_days: int
    as_of: str


def _count(state: ServiceState) -> int:
    """Events in the store (cheap: the cache key)."""
    return int(state.store.snapshot(with_events=False).n_events)


def _events(state: ServiceState) -> Any:
    """Every stored event (``Events``), read only when a cached result is stale."""
    return state.store.snapshot(with_events=True).events


def _cached(state: ServiceState, name: str, n_events: int, compute: Any) -> Any:
    """``compute()`` once per (name, event count); concurrent callers wait for one computation."""
    lock = state.extras.setdefault(_LOCK_KEY, threading.Lock())
    with lock:
        cache = state.extras.setdefault(_KEY, {})
        hit = cache.get(name)
        if hit is not None and hit[0] == n_events:
            return hit[1]
        value = compute()
        cache[name] = (n_events, value)
        return value


@router.get("/v1/analytics", dependencies=[Depends(require_read)],
            summary="retention cohorts, repeat-purchase rate, activity, new-user conversion, churn AUC")
def analytics(
    state: State,
    cohort: Annotated[str, Query(pattern="^(week|month)$", description="retention cohorts by first-seen week or month")] = "month",
    conversion_days: Annotated[int, Query(ge=0, le=365, description="new-user conversion window")] = 7,
) -> dict[str, Any]:
    from coldbrew.analytics.report import AnalyticsConfig, analytics_summary

    n_events = _count(state)
    if not n_events:
        report_dir = state.settings.report_dir
        path = Path(report_dir) / "analytics.json" if report_dir is not None else None
        if path is not None and path.is_file():
            return json.loads(path.read_text(encoding="utf-8")) | {"source": "report"}
        # Not an error: a new shop simply has nothing to report yet.
        return {"events": 0, "users": 0, "source": "event store",
                "note": "no events stored yet: POST /v1/events (or run coldbrew analytics --out <report_dir>)"}
    config = AnalyticsConfig(cohort=cohort, conversion_days=conversion_days)
    summary = _cached(state, f"summary:{cohort}:{conversion_days}", n_events,
                      lambda: analytics_summary(_events(state), config))
    return summary | {"source": "event store"}


@router.get("/v1/analytics/users/{user_id}/churn", response_model=ChurnOut, dependencies=[Depends(require_read)],
            summary="a user's churn risk: probability of no activity in the next horizon_days")
def churn(
    state: State,
    user_id: Annotated[str, PathParam(min_length=1, max_length=256, description="the shop's user ID")],
    horizon_days: Annotated[int, Query(ge=1, le=365, description="churned = inactive for this many days")] = 90,
) -> ChurnOut:
    import pandas as pd

    from coldbrew.analytics.churn import ChurnConfig
    from coldbrew.analytics.report import churn_scores

    n_events = _count(state)
    if not n_events:
        raise ApiError(404, "no events stored yet: churn risk needs an activity history")

    def compute() -> tuple[dict[str, float], str]:
        events = _events(state)
        try:
            scores = churn_scores(events, ChurnConfig(horizon_days=horizon_days))
        except DataError as exc:
            raise ApiError(422, f"field 'horizon_days': {exc}", "horizon_days") from None
        return scores, pd.Timestamp(int(events.timestamps.max()), unit="s").strftime("%Y-%m-%d")

    scores, as_of = _cached(state, f"churn:{horizon_days}", n_events, compute)
    risk = scores.get(state.user_key(user_id))
    if risk is None:
        raise ApiError(404, f"user '{user_id}' has no activity in the last year of stored events", "user_id")
    return ChurnOut(user_id=user_id, churn_risk=round(float(risk), 6), horizon_days=horizon_days, as_of=as_of)
