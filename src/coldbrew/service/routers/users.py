"""Per-user endpoints: recommendations, profile, erasure, onboarding."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from coldbrew.requests import Request
from coldbrew.service.auth import require_read, require_write
from coldbrew.service.errors import ApiError
from coldbrew.service.schemas import (
    DeleteUserOut,
    OnboardingIn,
    OnboardingOut,
    ProfileOut,
    RecommendationsOut,
)
from coldbrew.service.state import ServiceState, State
from coldbrew.storage.event_store import UserProfile

router = APIRouter(tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=256, description="the shop's user ID")]
_PROFILE_EVENTS = 10_000  # events counted on the profile page
_PROFILE_HISTORY = 50
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_STOPWORDS = frozenset("with from this that pack pcs piece pieces large small mini set of and the for".split())


def check_k(state: ServiceState, k: int, field: str = "k") -> None:
    """422 naming the field when ``k`` is above ``settings.max_k``."""
    if k > state.settings.max_k:
        raise ApiError(422, f"field '{field}': must be at most {state.settings.max_k}, got {k}", field)


def _exclude_list(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    ids = tuple(i.strip() for i in raw.split(",") if i.strip())
    if any(len(i) > 256 for i in ids):
        raise ApiError(422, "field 'exclude': item IDs are at most 256 characters", "exclude")
    return ids


@router.get(
    "/v1/users/{user_id}/recommendations", response_model=RecommendationsOut,
    dependencies=[Depends(require_read)], summary="top-k items for a user, with reasons",
)
async def recommendations(
    state: State,
    user_id: UserId,
    k: Annotated[int, Query(ge=1, description="list length (at most max_k)")] = 20,
    category: Annotated[str | None, Query(min_length=1, max_length=200,
                                          description="only items whose category contains this")] = None,
    max_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="only items up to this price")] = None,
    exclude: Annotated[str | None, Query(max_length=100_000, description="comma-separated item IDs to leave out")] = None,
) -> JSONResponse:
    check_k(state, k)
    excluded = _exclude_list(exclude)

    def prepare() -> Request | None:  # in the batcher's worker: the store read and the filters
        history = state.history(user_id)
        with state.lock.read():
            candidates = state.candidates(category, max_price)
            if candidates is not None and not candidates:
                return None
            return state.request_for(user_id, history, exclude=excluded, candidates=candidates)

    items, version = await state.batcher.submit(prepare, k)
    # The hot path: items are built from the model's own arrays, so skip re-validating them.
    return JSONResponse({"user_id": user_id, "model_version": version, "items": items})


@router.get(
    "/v1/users/{user_id}/profile", response_model=ProfileOut, dependencies=[Depends(require_read)],
    summary="what the service knows about a user: events, latest history, interests",
)
def profile(state: State, user_id: UserId) -> ProfileOut:
    history = state.history(user_id, limit=_PROFILE_EVENTS)
    latest = history.events[:_PROFILE_HISTORY]
    with state.lock.read():
        model = state.model
        positions = model.item_map_.lookup([e.item_id for e in history.events[:200]])
        titles = model.catalog_.titles
        categories = model.catalog_.categories
        rows = [
            {"item_id": e.item_id, "title": str(titles[p]) if p >= 0 else "", "event": e.event,
             "timestamp": int(e.timestamp)}
            for e, p in zip(latest, positions)
        ]
        seen = Counter(
            str(categories[p]).split(">")[-1].split("|")[0].strip() for p in positions if p >= 0
        )
        seen.pop("", None)
        if not seen:  # a catalog without categories: the words the user's products share
            seen = Counter(
                w for p in positions if p >= 0 for w in set(_WORD.findall(str(titles[p]).lower()))
                if len(w) > 3 and w not in _STOPWORDS
            )
            seen = Counter({w: n for w, n in seen.items() if n > 1})
    interests: list[str] = []
    if history.profile is not None:
        interests += [w for w in (history.profile.text, *history.profile.categories) if w]
    ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[:5]  # ties: alphabetical
    interests += [c for c, _ in ranked if c not in interests]
    return ProfileOut(user_id=user_id, events=len(history.events), history=rows, interests=interests[:10])


@router.delete(
    "/v1/users/{user_id}", response_model=DeleteUserOut, dependencies=[Depends(require_write)],
    summary="erase a user's events and profile",
)
def delete_user(state: State, user_id: UserId) -> DeleteUserOut:
    events, had_profile = state.store.erase_user(state.user_key(user_id))
    return DeleteUserOut(user_id=user_id, deleted_events=events, deleted_profile=had_profile)


@router.post(
    "/v1/onboarding", response_model=OnboardingOut, dependencies=[Depends(require_write)],
    summary="a new user's interests (free text and/or categories) -> stored profile + recommendations",
)
def onboarding(state: State, body: OnboardingIn) -> OnboardingOut:
    check_k(state, body.k)
    text = (body.text or "").strip()
    picked = tuple(c.strip() for c in body.categories or () if c.strip())
    if not text and not picked:
        raise ApiError(422, "field 'text': give some interests in 'text' or pick 'categories'", "text")
    if picked:
        with state.lock.read():
            view = state.item_view()
            for j, name in enumerate(picked):
                needle = name.lower()
                if not any(needle in c for c in view.categories):
                    raise ApiError(422, f"field 'categories[{j}]': no product category matches {name!r}",
                                   f"categories[{j}]")
    user_id = body.user_id or f"u-{uuid.uuid4().hex[:16]}"
    state.store.save(profiles=[UserProfile(state.user_key(user_id), text, picked)])
    history = state.history(user_id)
    with state.lock.read():
        model = state.model
        candidates = None
        if picked:
            view = state.item_view()
            needles = [p.lower() for p in picked]
            keep = ~view.blocked & np.fromiter(
                (any(n in c for n in needles) for c in view.categories), dtype=bool, count=len(view.blocked)
            )
            candidates = tuple(model.item_map_.ids(np.flatnonzero(keep)))
        request = state.request_for(user_id, history, candidates=candidates)
        items = state.item_outs(model, model.recommend([request], body.k)[0])
        version = state.model_version
    return OnboardingOut(user_id=user_id, model_version=version, items=items)
