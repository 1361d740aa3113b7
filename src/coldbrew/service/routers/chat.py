"""The shopping assistant over HTTP: ``POST /v1/chat``.

One :class:`~coldbrew.assistant.Assistant` per app (in ``state.extras["assistant"]``), built
on the first message; it follows the active model through hot swaps and keeps dialogue states
in memory (least recently used conversations dropped beyond ``_MAX_CONVERSATIONS``).
"""

from __future__ import annotations

import re
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator

from coldbrew.assistant.reply import MAX_MESSAGE_CHARS
from coldbrew.errors import DataError
from coldbrew.service.auth import require_read
from coldbrew.service.errors import ApiError
from coldbrew.service.routers.users import check_k
from coldbrew.service.schemas import Int, ItemOut
from coldbrew.service.state import ServiceState, State

router = APIRouter(tags=["assistant"])

_MAX_CONVERSATIONS = 10_000
_BUILD_LOCK = threading.Lock()


class ChatIn(BaseModel):
    """One message of a conversation; a missing ``conversation_id`` starts a new one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    conversation_id: str | None = Field(default=None, min_length=1, max_length=128)
    user_id: str | None = Field(default=None, max_length=256,
                                description="the shopper, for 'recommend for me' and personalised results")
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="what the shopper said (English or Chinese)")
    k: Int = Field(default=5, ge=1, description="products per answer (at most max_k)")

    @field_validator("user_id")
    @classmethod
    def _no_empty_user(cls, value: str | None) -> str | None:
        return value or None  # an anonymous page sends ""


class ChatOut(BaseModel):
    conversation_id: str
    intent: str
    slots: dict[str, Any]
    text: str
    items: list[ItemOut]
    language: str
    confidence: float
    filters: dict[str, Any]
    text_source: str


def _assistant(state: ServiceState):
    """The app's assistant, created on first use and pointed at the active model."""
    assistant = state.extras.get("assistant")
    if assistant is None:
        with _BUILD_LOCK:
            assistant = state.extras.get("assistant")
            if assistant is None:
                from coldbrew.assistant import Assistant

                assistant = Assistant(state.model, max_conversations=_MAX_CONVERSATIONS)
                state.extras["assistant"] = assistant
    if assistant.model is not state.model:  # a retrain swapped the model
        assistant.model = state.model
    return assistant


@router.post(
    "/v1/chat", response_model=ChatOut, dependencies=[Depends(require_read)],
    summary="talk to the shopping assistant (find, recommend, similar, compare, filter, ask, reset)",
)
def chat(
    state: State,
    body: Annotated[ChatIn, Body(openapi_examples={
        "find": {"value": {"conversation_id": "c1", "message": "show me candles under £20"}},
        "follow-up": {"value": {"conversation_id": "c1", "message": "cheaper ones"}},
        "chinese": {"value": {"message": "200元以内的红酒"}},
    })],
) -> ChatOut:
    check_k(state, body.k)
    with state.lock.read():
        history = state.request_for(body.user_id).history if body.user_id else ()
        assistant = _assistant(state)
        try:
            reply = assistant.reply(body.conversation_id, body.message, user_history=history,
                                    k=body.k, unavailable=state.item_view().blocked_ids)
        except DataError as exc:
            found = re.match(r"field '([^']+)'", str(exc))
            raise ApiError(422, str(exc), found.group(1) if found else "message") from None
    out = reply.to_dict()
    return ChatOut(**out)
