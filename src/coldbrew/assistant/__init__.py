"""The shopping assistant: intents, bilingual slots, dialogue state and answers with products.

``Assistant(model).reply(conversation_id, message, user_history=None)`` returns a
:class:`Reply` (intent, slots, text, items). Nothing is loaded at import time: the intent
classifier is trained on the bundled examples at the first reply.
"""

from coldbrew.assistant.intents import (
    INTENTS,
    IntentClassifier,
    IntentExample,
    bundled_classifier,
    load_examples,
)
from coldbrew.assistant.reply import Assistant, Reply, ReplyItem
from coldbrew.assistant.slots import CatalogVocabulary, SlotExtractor, Slots, detect_language
from coldbrew.assistant.state import ConversationStore, DialogueState

__all__ = [
    "INTENTS",
    "Assistant",
    "CatalogVocabulary",
    "ConversationStore",
    "DialogueState",
    "IntentClassifier",
    "IntentExample",
    "Reply",
    "ReplyItem",
    "SlotExtractor",
    "Slots",
    "bundled_classifier",
    "detect_language",
    "load_examples",
]
