"""Request and response bodies of the HTTP API (pydantic models).

Every input model forbids unknown fields and bounds every string and list, so bad input is a
422 naming the field, never stored garbage. Responses share :class:`ItemOut`.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    WithJsonSchema,
    field_validator,
)

__all__ = [
    "Int",
    "no_bool",
    "Float",
    "Bool",
    "ErrorOut",
    "ErrorDetailOut",
    "EventIn",
    "EventBatch",
    "EventsBody",
    "AcceptedOut",
    "ItemOut",
    "RecommendationsOut",
    "ProfileOut",
    "HistoryItemOut",
    "DeleteUserOut",
    "OnboardingIn",
    "OnboardingOut",
    "ItemIn",
    "ItemBatch",
    "ItemsBody",
    "ItemPatch",
    "ItemsWrittenOut",
    "ItemDetailOut",
    "CatalogItemOut",
    "CatalogOut",
    "SimilarOut",
    "RetrainOut",
    "ModelVersionOut",
    "ModelsOut",
    "parse_timestamp",
]

# Events more than this far in the future are refused (clock skew allowance).
_FUTURE_SLACK_S = 86_400
_ID = Field(min_length=1, max_length=256, description="a non-empty ID (at most 256 characters)")
_EVENT_NAME = r"^[A-Za-z][A-Za-z0-9_:\-]{0,31}$"

_Strict = ConfigDict(extra="forbid", str_strip_whitespace=True)
# What a timestamp may be sent as (the field validator turns each into unix seconds).
_TIMESTAMP_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 0},
                               {"type": "string", "minLength": 1, "maxLength": 64}, {"type": "null"}]}


class _In(BaseModel):
    model_config = _Strict


def no_bool(value: Any) -> Any:
    # pydantic's lax mode reads true/false as 1/0 (JSON Schema says a boolean is no number)
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


# Numbers and booleans as JSON types them: ``true`` is no integer, ``1`` or ``"yes"`` no boolean.
Int = Annotated[int, BeforeValidator(no_bool)]
Float = Annotated[float, BeforeValidator(no_bool)]
Bool = Annotated[bool, Strict()]


def parse_timestamp(value: Any) -> int:
    """Unix seconds from a number (seconds, or milliseconds above 1e11) or an ISO 8601 string.

    Raises ``ValueError`` with a message for the client; the result lies between 1970 and one
    day from now.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected unix seconds or an ISO 8601 date-time")
    if isinstance(value, str):
        text = value.strip()
        if not text or len(value) > 64:
            raise ValueError("expected unix seconds or an ISO 8601 date-time (1 to 64 characters)")
        try:
            seconds: float = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(f"expected unix seconds or an ISO 8601 date-time, got {value!r}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite timestamp, got {value!r}")
    if abs(seconds) > 1e11:
        seconds /= 1000.0
    if seconds < 0:
        raise ValueError(f"timestamp {value!r} is before 1970")
    if seconds > time.time() + _FUTURE_SLACK_S:
        raise ValueError(f"timestamp {value!r} is more than a day in the future")
    return int(seconds)


class ErrorDetailOut(BaseModel):
    """What went wrong: a message for people, the field (or header, ``body``, ...) it is about."""

    message: str
    field: str | None


class ErrorOut(BaseModel):
    """Every error: ``{"error": {"message": ..., "field": ...}}``."""

    error: ErrorDetailOut = Field(examples=[{"message": "field 'k': must be at most 1000", "field": "k"}])


# ---------------------------------------------------------------------- events
class EventIn(_In):
    """One thing a user did. ``timestamp`` defaults to now."""

    user_id: str = _ID
    item_id: str = _ID
    timestamp: Annotated[int | None, WithJsonSchema(_TIMESTAMP_SCHEMA)] = Field(
        default=None, description="unix seconds (or ms) or ISO 8601, e.g. 2026-11-24T10:00:00Z;"
        " not before 1970 nor more than a day in the future"
    )
    event: str = Field(default="view", pattern=_EVENT_NAME,
                       description="view, click, cart, purchase, rating, ... (letters, digits, _-:)")
    value: Float | None = Field(default=None, allow_inf_nan=False, description="rating or quantity")

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> int | None:
        return None if value is None else parse_timestamp(value)

    @field_validator("event")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class EventBatch(_In):
    """Several events, stored atomically (all or none)."""

    events: list[EventIn] = Field(min_length=1)


def _events_kind(value: Any) -> str:
    return "event-batch" if isinstance(value, dict) and "events" in value else "one-event"


EventsBody = Annotated[
    Annotated[EventBatch, Tag("event-batch")] | Annotated[EventIn, Tag("one-event")],
    Discriminator(_events_kind),
]


class AcceptedOut(BaseModel):
    accepted: int


# ---------------------------------------------------------------------- items out
class ItemOut(BaseModel):
    """A recommended item, with why."""

    item_id: str
    title: str
    category: str
    price: float | None
    score: float
    reason: str


class RecommendationsOut(BaseModel):
    user_id: str
    model_version: str
    items: list[ItemOut]


class HistoryItemOut(BaseModel):
    item_id: str
    title: str
    event: str
    timestamp: int


class ProfileOut(BaseModel):
    user_id: str
    events: int
    history: list[HistoryItemOut]
    interests: list[str]


class DeleteUserOut(BaseModel):
    user_id: str
    deleted_events: int
    deleted_profile: bool


class OnboardingIn(_In):
    """A new user's own words and/or picked categories (at least one of the two)."""

    user_id: str | None = Field(default=None, min_length=1, max_length=256,
                                description="store the profile under this user (default: a new ID)")
    text: str | None = Field(default=None, max_length=2000, description="interests, any language")
    categories: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, max_length=20
    )
    k: Int = Field(default=10, ge=1)


class OnboardingOut(BaseModel):
    user_id: str
    model_version: str
    items: list[ItemOut]


# ---------------------------------------------------------------------- items in
class ItemIn(_In):
    """A product. Only ``item_id`` and ``title`` are required."""

    item_id: str = _ID
    title: str = Field(min_length=1, max_length=1000)
    description: str = Field(default="", max_length=20_000)
    category: str = Field(default="", max_length=500)
    brand: str = Field(default="", max_length=200)
    price: Float | None = Field(default=None, ge=0, allow_inf_nan=False)
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=50)
    in_stock: Bool = True


class ItemBatch(_In):
    items: list[ItemIn] = Field(min_length=1)


def _items_kind(value: Any) -> str:
    return "item-batch" if isinstance(value, dict) and "items" in value else "one-item"


ItemsBody = Annotated[
    Annotated[ItemBatch, Tag("item-batch")] | Annotated[ItemIn, Tag("one-item")],
    Discriminator(_items_kind),
]


class ItemPatch(_In):
    """Fields to change on a product; omitted fields keep their value."""

    model_config = ConfigDict(**_Strict, json_schema_extra={"minProperties": 1})

    title: str = Field(default=None, min_length=1, max_length=1000, description="not null: a product keeps a title")  # type: ignore[assignment]
    description: str | None = Field(default=None, max_length=20_000)
    category: str | None = Field(default=None, max_length=500)
    brand: str | None = Field(default=None, max_length=200)
    price: Float | None = Field(default=None, ge=0, allow_inf_nan=False)
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(default=None, max_length=50)
    in_stock: Bool | None = None


class ItemsWrittenOut(BaseModel):
    accepted: int
    added: int
    updated: int


class ItemDetailOut(BaseModel):
    item_id: str
    title: str
    description: str
    category: str
    brand: str
    price: float | None
    tags: list[str]
    in_stock: bool


class CatalogItemOut(BaseModel):
    item_id: str
    title: str
    category: str
    price: float | None
    in_stock: bool


class CatalogOut(BaseModel):
    total: int
    items: list[CatalogItemOut]


class SimilarOut(BaseModel):
    item_id: str
    items: list[ItemOut]


# ---------------------------------------------------------------------- models
class RetrainOut(BaseModel):
    job_id: str
    status: str


class ModelVersionOut(BaseModel):
    version: str
    created_at: str
    events: int
    items: int
    status: str
    message: str | None = None


class ModelsOut(BaseModel):
    active: str
    versions: list[ModelVersionOut]
