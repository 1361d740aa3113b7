"""Dialogue state per conversation and the bounded in-memory store that keeps it."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["DialogueState", "ConversationStore"]


@dataclass
class DialogueState:
    """What a conversation has established so far.

    The *topic* (``category``, ``product``, ``keywords``, ``query``, or ``similar_to``: products
    like one item) is what the shopper is looking for; the *filters* (``min_price``, ``max_price``, ``colour``) narrow it; both carry
    over until a new topic or a reset. ``last_items`` are the item IDs shown last, in order
    (what "the second one" and "cheaper ones" refer to); ``focus`` the product talked about.
    """

    conversation_id: str
    category: str | None = None
    product: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    query: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    colour: str | None = None
    last_items: list[str] = field(default_factory=list)
    focus: str | None = None
    similar_to: str | None = None  # the list shown is "products like this item"
    last_intent: str | None = None
    language: str = "en"
    turns: int = 0

    def clear(self) -> None:
        """Forget topic, filters, results and focus (the conversation ID and turn count stay)."""
        fresh = DialogueState(self.conversation_id, language=self.language, turns=self.turns)
        self.__dict__.update(fresh.__dict__)

    def filters(self) -> dict[str, object]:
        """The active topic and filters, for a reply's ``slots`` echo and for display."""
        out: dict[str, object] = {}
        for name in ("category", "product", "keywords", "min_price", "max_price", "colour"):
            value = getattr(self, name)
            if value is not None and value != ():
                out[name] = list(value) if isinstance(value, tuple) else value
        return out


class ConversationStore:
    """Dialogue states by conversation ID, least recently used evicted beyond ``max_conversations``.

    Thread-safe: the service calls it from several worker threads.
    """

    def __init__(self, max_conversations: int = 10_000) -> None:
        if max_conversations < 1:
            raise ValueError(f"max_conversations must be at least 1, got {max_conversations}")
        self.max_conversations = max_conversations
        self._states: OrderedDict[str, DialogueState] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._states

    def get(self, conversation_id: str | None) -> DialogueState:
        """The state of a conversation (a new one for an unknown or missing ID)."""
        with self._lock:
            if conversation_id is None or conversation_id == "":
                conversation_id = uuid.uuid4().hex
            state = self._states.get(conversation_id)
            if state is None:
                state = DialogueState(conversation_id)
                self._states[conversation_id] = state
                while len(self._states) > self.max_conversations:
                    self._states.popitem(last=False)
            else:
                self._states.move_to_end(conversation_id)
            return state

    def drop(self, conversation_id: str) -> bool:
        """Forget a conversation entirely; ``True`` when it existed."""
        with self._lock:
            return self._states.pop(conversation_id, None) is not None
