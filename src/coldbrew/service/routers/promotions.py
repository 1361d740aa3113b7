"""Promotions and ads: ``POST /v1/promotions``, ``GET /v1/promotions``, ``POST /v1/promotions/select``.

Campaigns are kept in ``<model_dir>/promotions.json`` and impressions and spend in
``<model_dir>/promotion_ledger.db`` (a :class:`SQLiteLedger`), so a restart keeps campaigns,
frequency caps and budgets; replicas on different machines each count their own. pCTR uses ``<model_dir>/ctr_calibration.json`` when
``coldbrew calibrate-ctr`` wrote one, else an uncalibrated prior (said in each explanation).
Promotion copy comes from templates, or from an OpenAI-compatible server when the settings
name one (``copy_url``), falling back to the template on any error.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, Strict

from coldbrew.errors import DataError
from coldbrew.service.auth import require_read, require_write
from coldbrew.service.errors import ApiError
from coldbrew.service.schemas import Float, Int
from coldbrew.service.state import ServiceState, State

router = APIRouter(tags=["promotions"])

_KEY = "promotions"
_LOCK_KEY = "promotions_lock"
_FILE = "promotions.json"
_LEDGER = "promotion_ledger.db"
_FIELD = re.compile(r"'(promotion_id|item_id|category|bid|budget|start|end|frequency_cap|cap_period|discount_percent)'")


@dataclass
class _Campaigns:
    """The service's promotions, ledger and calibrator (``state.extras["promotions"]``)."""

    path: Path
    promotions: dict[str, Any] = field(default_factory=dict)  # promotion_id -> Promotion
    ledger: Any = None
    calibrator: Any = None
    calibrator_model: Any = None  # the model the calibrator (or prior) was chosen for
    lock: threading.Lock = field(default_factory=threading.Lock)

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        data = {"promotions": [p.to_dict() for p in self.promotions.values()]}
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.path)


def campaigns(state: ServiceState) -> _Campaigns:
    """The state's campaigns, loaded from the model directory on first use."""
    from coldbrew.promotions import SQLiteLedger, load_promotions

    found = state.extras.get(_KEY)
    if found is None:
        with state.extras.setdefault(_LOCK_KEY, threading.Lock()):
            found = state.extras.get(_KEY)
            if found is None:
                path = Path(state.settings.model_dir) / _FILE
                found = _Campaigns(path, ledger=SQLiteLedger(path.with_name(_LEDGER)))
                if path.is_file():
                    found.promotions = {p.promotion_id: p for p in load_promotions(path)}
                state.extras[_KEY] = found
    return found


class _UserKeyLedger:
    """The ledger as the planner sees it: users are counted under their stored ID.

    With ``pseudonymise_key`` set that is HMAC-SHA256(key, user_id), as in the event store:
    the raw ID is never written to ``promotion_ledger.db``.
    """

    def __init__(self, ledger: Any, user_key: Any) -> None:
        self.ledger = ledger
        self.user_key = user_key

    def impressions(self, promotion_id: str, user_id: str, since: int | None = None) -> int:
        return self.ledger.impressions(promotion_id, self.user_key(user_id), since)

    def spent(self, promotion_id: str) -> float:
        return self.ledger.spent(promotion_id)

    def record(self, promotion_id: str, user_id: str, timestamp: int, cost: float) -> None:
        self.ledger.record(promotion_id, self.user_key(user_id), timestamp, cost)


def _calibrator(state: ServiceState, camp: _Campaigns) -> Any:
    from coldbrew.promotions import CALIBRATION_FILE, CTRCalibrator

    if camp.calibrator_model is not state.model:  # a hot swap may bring a new calibration
        path = Path(state.settings.model_dir) / CALIBRATION_FILE
        camp.calibrator = CTRCalibrator.load(path) if path.is_file() else None
        camp.calibrator_model = state.model
    return camp.calibrator


# unix seconds (a JSON integer: no boolean, no digits in a string) or an ISO 8601 string
_Moment = Annotated[int, Strict()] | Annotated[str, Strict(), Field(min_length=1, max_length=64)] | None


_UNION_TAGS = {"int", "str", "constrained-str", "float", "none"}


class PromotionIn(BaseModel):
    """One promotion: an item or a category, a bid per click, a budget, a schedule, caps."""

    model_config = ConfigDict(extra="forbid")

    promotion_id: str = Field(min_length=1, max_length=256)
    item_id: str | None = Field(default=None, min_length=1, max_length=256)
    category: str | None = Field(default=None, min_length=1, max_length=256)
    bid: Float = Field(gt=0, description="paid per click")
    budget: Float = Field(gt=0, description="total spend; each impression is charged pCTR x bid")
    start: _Moment = Field(default=None, description="unix seconds or ISO 8601")
    end: _Moment = Field(default=None, description="unix seconds or ISO 8601 (exclusive)")
    frequency_cap: Int | None = Field(default=None, ge=1, description="impressions per user per cap_period")
    cap_period: Literal["day", "total"] = "day"
    discount_percent: Float | None = Field(default=None, gt=0, lt=100)


class PromotionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    promotions: list[PromotionIn] = Field(min_length=1)


class SelectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=256)
    slots: Int = Field(default=3, ge=1, le=100)
    language: Literal["en", "zh"] = "en"
    now: Int | None = Field(default=None, description="unix seconds for schedules and daily caps (default: now)")


class SelectOut(BaseModel):
    user_id: str
    placements: list[dict[str, Any]] = Field(description="slot, promotion_id, item_id, title, predicted_ctr,"
                                             " bid, score, explanation, copy, copy_source")
    skipped: dict[str, str]


@router.post("/v1/promotions", status_code=201, dependencies=[Depends(require_write)],
             summary="create or replace one promotion or a batch ({\"promotions\": [...]})")
def create_promotions(
    state: State,
    body: Annotated[dict[str, Any], Body(description="one promotion (PromotionIn) or {\"promotions\": [...]}")],
) -> dict[str, Any]:
    from pydantic import ValidationError

    from coldbrew.promotions import promotion_from_dict

    batch = "promotions" in body
    try:
        parsed_body = PromotionBatch.model_validate(body) if batch else PromotionIn.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ""
        for part in first.get("loc", ()):
            if isinstance(part, str) and part in _UNION_TAGS:
                continue  # which member of a union failed: not part of the field's name
            path += f"[{part}]" if isinstance(part, int) else ("." if path else "") + str(part)
        if first.get("type") == "extra_forbidden":
            message = f"unknown field '{path}'"
        elif path.rsplit(".", 1)[-1] in ("start", "end"):
            message = (f"field '{path}': expected unix seconds (an integer) or an ISO 8601 date-time"
                       " (a string of 1 to 64 characters)")
        else:
            message = f"field '{path}': {first.get('msg')}"
        raise ApiError(422, message, path or "body") from None
    rows = parsed_body.promotions if isinstance(parsed_body, PromotionBatch) else [parsed_body]
    if len(rows) > state.settings.max_batch:
        raise ApiError(413, f"field 'promotions': at most {state.settings.max_batch:,} promotions per request,"
                            f" got {len(rows):,}", "promotions")
    parsed = []
    for n, row in enumerate(rows):
        where = f"promotions[{n}]" if batch else "body"
        data = row.model_dump(exclude_none=True)
        try:
            promo = promotion_from_dict(data, where)
        except DataError as exc:
            found = _FIELD.search(str(exc))
            field_name = found.group(1) if found else None
            raise ApiError(422, str(exc), f"{where}.{field_name}" if batch and field_name else field_name) from None
        if promo.item_id is not None:
            with state.lock.read():
                known = state.item_position(promo.item_id) >= 0
            if not known:
                name = f"promotions[{n}].item_id" if batch else "item_id"
                raise ApiError(422, f"field '{name}': unknown item '{promo.item_id}'", name)
        parsed.append(promo)
    camp = campaigns(state)
    with camp.lock:
        for promo in parsed:
            camp.promotions[promo.promotion_id] = promo
        camp.save()
    return {"created": len(parsed), "promotions": [p.to_dict() for p in parsed]}


@router.get("/v1/promotions", dependencies=[Depends(require_read)], summary="every promotion, with its spend")
def list_promotions(state: State) -> dict[str, Any]:
    camp = campaigns(state)
    with camp.lock:
        promos = list(camp.promotions.values())
    return {"promotions": [p.to_dict() | {"spent": round(camp.ledger.spent(p.promotion_id), 6)} for p in promos]}


@router.delete("/v1/promotions/{promotion_id}", dependencies=[Depends(require_write)], summary="stop a promotion")
def delete_promotion(state: State, promotion_id: Annotated[str, PathParam(min_length=1, max_length=256)]) -> dict[str, Any]:
    camp = campaigns(state)
    with camp.lock:
        if camp.promotions.pop(promotion_id, None) is None:
            raise ApiError(404, f"unknown promotion '{promotion_id}'", "promotion_id")
        camp.save()
    return {"promotion_id": promotion_id, "deleted": True}


@router.post("/v1/promotions/select", response_model=SelectOut, dependencies=[Depends(require_read)],
             summary="choose and order promotions for a user's slots (records the impressions)")
def select_promotions(state: State, body: SelectIn) -> SelectOut:
    from coldbrew.promotions import ChatCompletionCopywriter, PromotionPlanner

    camp = campaigns(state)
    with camp.lock:
        promos = list(camp.promotions.values())
    history = state.history(body.user_id)
    copy_url = state.settings.copy_url
    copywriter = ChatCompletionCopywriter(copy_url) if copy_url else None
    with state.lock.read():
        request = state.request_for(body.user_id, history)
        with camp.lock:  # caps and budgets: check and record as one step
            ledger = _UserKeyLedger(camp.ledger, state.user_key)
            planner = PromotionPlanner(state.model, promos, _calibrator(state, camp), ledger, copywriter)
            placements = planner.select(request, body.slots, now=body.now, language=body.language, with_copy=False)
    # Outside both locks: a slow copy backend must hold up neither other selections nor a
    # model swap (the planner keeps its model; its catalog strings are only read).
    placements = planner.write_copy(placements, request, body.language)
    return SelectOut(user_id=body.user_id, placements=[p.to_dict() for p in placements],
                     skipped=planner.skipped_)
