"""The shopping assistant: intent -> slots -> dialogue state -> products + a short answer.

Products always come from the :class:`~coldbrew.pipeline.Recommender`: "find" ranks the
items that pass the conversation's filters by the shopper's words (and history, when
given); "recommend for me" by their history; "similar to X" is ``Recommender.similar``
filtered; "compare" and attribute questions read the catalog.

Size (about 500 lines): the dialogue state and one method per intent, which share that
state and the catalog filters; the slot reading is :mod:`coldbrew.assistant.slots`.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from coldbrew.assistant.intents import IntentClassifier, IntentExample, bundled_classifier
from coldbrew.assistant.phrases import describe_filters, format_price, say
from coldbrew.assistant.phrasing import Phraser
from coldbrew.assistant.slots import (
    CatalogVocabulary,
    SlotExtractor,
    Slots,
    detect_language,
    lexicon,
    singular,
)
from coldbrew.assistant.state import ConversationStore, DialogueState
from coldbrew.errors import DataError, NotFittedError
from coldbrew.requests import HistoryEvent, Request

__all__ = ["Assistant", "Reply", "ReplyItem"]

MAX_MESSAGE_CHARS = 2000
_THANKS = re.compile(r"thank|cheers|\bta\b|谢")
_BYE = re.compile(r"\bbye|goodbye|see you|later|再见|拜拜|回头见|下次见|再会")


@dataclass(frozen=True)
class ReplyItem:
    """One product in a reply (``price`` is ``None`` when unknown)."""

    item_id: str
    title: str
    category: str
    price: float | None
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "title": self.title, "category": self.category,
                "price": self.price, "score": round(self.score, 6), "reason": self.reason}


@dataclass(frozen=True)
class Reply:
    """The assistant's answer to one message.

    ``slots`` are what this message said; ``filters`` the conversation's active topic and
    filters after it; ``confidence`` the intent classifier's probability.
    """

    conversation_id: str
    intent: str
    slots: dict[str, Any]
    text: str
    items: list[ReplyItem] = field(default_factory=list)
    language: str = "en"
    confidence: float = 1.0
    filters: dict[str, Any] = field(default_factory=dict)
    text_source: str = "template"  # "llm" when a phrasing backend worded the text

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id, "intent": self.intent, "slots": self.slots,
            "text": self.text, "items": [i.to_dict() for i in self.items],
            "language": self.language, "confidence": round(self.confidence, 4), "filters": self.filters,
            "text_source": self.text_source,
        }


_History = tuple[HistoryEvent, ...]
_Answer = tuple[str, list[ReplyItem]]  # the reply text and its products


class Assistant:
    """A multi-turn shopping assistant over a fitted recommender.

    Parameters
    ----------
    model: a fitted :class:`~coldbrew.pipeline.Recommender` (its catalog gives the
        categories, titles and prices the assistant talks about).
    encoder: the text encoder of the intent classifier; default: the bundled multilingual
        USE, whatever encoder the model uses (the classifier on the bundled examples is
        trained once per process and encoder and shared by all assistants).
    k: products per answer.
    max_conversations: dialogue states kept in memory (least recently used dropped first).
    currency: symbol used when prices are written out.
    examples: intent training examples; default: the bundled English + Chinese set.
    classifier: an already fitted :class:`IntentClassifier` (then ``encoder`` and
        ``examples`` are not used).
    phraser: an optional generative backend that rewords each templated answer (e.g.
        :class:`~coldbrew.assistant.phrasing.ChatCompletionPhraser`); the template is the
        default and the fallback.

    One assistant may serve many threads: turns are answered one at a time (a turn takes a
    few milliseconds plus one encoder call and one recommender call).
    """

    def __init__(self, model, encoder=None, k: int = 5, max_conversations: int = 10_000,
                 currency: str = "£", examples: Sequence[IntentExample] | None = None,
                 classifier: IntentClassifier | None = None, phraser: Phraser | None = None) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self._model = model
        self._encoder = encoder
        self.k = k
        self.currency = currency
        self.conversations = ConversationStore(max_conversations)
        self._examples = examples
        self._classifier = classifier
        self.phraser = phraser
        self._vocab_size = -1
        self._lock = threading.RLock()
        self._unavailable = np.zeros(0, dtype=bool)

    # ------------------------------------------------------------------ parts, built lazily
    @property
    def model(self):
        return self._model

    @model.setter
    def model(self, model) -> None:
        """Swap the recommender (e.g. after a retrain); conversations are kept."""
        with self._lock:
            self._model = model
            self._vocab_size = -1

    @property
    def classifier(self) -> IntentClassifier:
        if self._classifier is None:
            if self._examples is None:
                self._classifier = bundled_classifier(self._encoder)
            else:
                from coldbrew.config import EncoderConfig
                from coldbrew.text import make_encoder

                encoder = self._encoder if self._encoder is not None else make_encoder(EncoderConfig())
                self._classifier = IntentClassifier(encoder).fit(self._examples)
        return self._classifier

    @property
    def extractor(self) -> SlotExtractor:
        catalog = self._model.catalog_
        if self._vocab_size != len(catalog):  # new items were added, or another model
            self._extractor = SlotExtractor(CatalogVocabulary.from_catalog(catalog))
            self._item_text = [
                " ".join(str(x) for x in parts).lower()
                for parts in zip(catalog.titles, catalog.descriptions, catalog.tags, catalog.categories)
            ]
            self._position = {str(i): n for n, i in enumerate(catalog.item_ids)}
            self._vocab_size = len(catalog)
        return self._extractor

    # ------------------------------------------------------------------ the turn
    def reply(self, conversation_id: str | None, message: str,
              user_history: Sequence[HistoryEvent] | None = None, k: int | None = None,
              unavailable: Collection[str] = ()) -> Reply:
        """Answer one message of a conversation (a new conversation when the ID is unknown or ``None``).

        ``user_history`` are the shopper's past events (for "recommend for me" and to
        personalise "find"); ``k`` overrides the number of products; ``unavailable`` item IDs
        (deleted, out of stock) are never shown and are reported out of stock when asked about.
        """
        with self._lock:
            reply = self._reply(conversation_id, message, user_history, k, unavailable)
        if self.phraser is None or not reply.text:
            return reply
        # Outside the lock: a slow model server must not hold up other conversations.
        facts = [{"title": i.title, "category": i.category, "price": i.price} for i in reply.items]
        text, source = self.phraser.phrase(reply.text, message, reply.language, facts)
        return replace(reply, text=text, text_source=source)

    def _reply(self, conversation_id: str | None, message: str, user_history: Sequence[HistoryEvent] | None,
               k: int | None, unavailable: Collection[str]) -> Reply:
        if not isinstance(message, str) or not message.strip():
            raise DataError("field 'message': expected a non-empty string")
        if len(message) > MAX_MESSAGE_CHARS:
            raise DataError(f"field 'message': at most {MAX_MESSAGE_CHARS} characters, got {len(message)}")
        if k is not None and k < 1:
            raise DataError(f"field 'k': must be at least 1, got {k}")
        if not hasattr(self._model, "catalog_"):
            raise NotFittedError("the assistant needs a fitted recommender: fit it or load a model directory")
        extractor = self.extractor
        self._unavailable = np.zeros(len(self._position), dtype=bool)
        for item_id in unavailable:
            if item_id in self._position:
                self._unavailable[self._position[item_id]] = True
        state = self.conversations.get(conversation_id)
        if re.search(r"[a-zA-Z\u4e00-\u9fff]", message):
            state.language = detect_language(message)
        intents, confidence = self.classifier.predict([message])
        intent = intents[0]
        slots = extractor.extract(message, intent)
        history = tuple(user_history or ())
        handler = getattr(self, f"_on_{intent}")
        text, items = handler(state, slots, message, history, k or self.k)
        state.turns += 1
        state.last_intent = intent
        return Reply(state.conversation_id, intent, slots.to_dict(), text, items, state.language,
                     float(confidence[0]), state.filters())

    # ------------------------------------------------------------------ intents
    def _on_find_products(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        if slots.category or slots.product or slots.keywords:
            state.clear()
            state.category, state.product, state.keywords = slots.category, slots.product, slots.keywords
            state.query = message
        elif state.query is None and not history:
            state.query = message
        return self._refine(state, slots, history, k)

    def _on_filter(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        if state.query is None and not state.last_items and not (slots.category or slots.product):
            if slots.min_price is None and slots.max_price is None and slots.colour is None:
                return say(state.language, "no_results_yet"), []
        if slots.product and not state.product:
            state.product = slots.product
        return self._refine(state, slots, history, k)

    def _on_recommend(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        state.clear()
        state.category = slots.category
        state.product = slots.product
        state.min_price, state.max_price, state.colour = slots.min_price, slots.max_price, slots.colour
        items = self._search(state, history, k)
        state.last_items = [i.item_id for i in items]
        key = "recommend" if history else "recommend_cold"
        return say(state.language, key, n=len(items), what=self._phrase(state, n=len(items))), items

    def _on_similar(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        target, problem = self._resolve(state, slots, 1)
        if problem:
            return problem, []
        item_id = target[0]
        state.clear()  # the list shown is now "like X": later filters refine it
        state.similar_to = state.focus = item_id
        state.min_price, state.max_price, state.colour = slots.min_price, slots.max_price, slots.colour
        if slots.relative_price:
            ref = self._price(item_id)
            if ref is not None and slots.relative_price == "lower":
                state.max_price = float(np.nextafter(ref, -np.inf))
            elif ref is not None:
                state.min_price = float(np.nextafter(ref, np.inf))
        items = self._search(state, history, k)
        state.last_items = [i.item_id for i in items]
        what = self._phrase(state, n=len(items))
        return say(state.language, "similar", n=len(items), title=self._title(item_id), what=what), items

    def _on_compare(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        targets, problem = self._resolve(state, slots, 2)
        if problem:
            return problem, []
        a, b = targets[:2]
        pa, pb = self._price(a), self._price(b)
        lang = state.language
        cheaper = ""
        if pa is not None and pb is not None:
            if abs(pa - pb) < 1e-9:
                cheaper = say(lang, "compare_same_price")
            else:
                low = a if pa < pb else b
                cheaper = say(lang, "compare_cheaper", title=self._title(low), diff=format_price(abs(pa - pb), self.currency))
        catalog = self._model.catalog_
        ba, bb = (str(catalog.brands[self._position[x]]) for x in (a, b))
        brands = say(lang, "compare_brands", ba=ba, bb=bb) if ba and bb and ba != bb else ""
        ca, cb = (str(catalog.categories[self._position[x]]) for x in (a, b))
        categories = say(lang, "compare_categories", a=self._title(a), b=self._title(b), ca=ca, cb=cb) if ca and cb else ""
        text = say(lang, "compare", a=self._title(a), b=self._title(b), pa=format_price(pa, self.currency),
                   pb=format_price(pb, self.currency), cheaper=cheaper, categories=categories, brands=brands)
        state.focus = None
        reason = "compared" if lang == "en" else "比较"
        return text, [self._item(a, 0.0, reason), self._item(b, 0.0, reason)]

    def _on_ask_attribute(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        target, problem = self._resolve(state, slots, 1)
        if problem:
            return problem, []
        item_id = target[0]
        state.focus = item_id
        text = self._answer(item_id, slots.attribute or "description", state.language)
        return text, [self._item(item_id, 0.0, slots.attribute or "description")]

    def _on_reset(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        state.clear()
        return say(state.language, "reset"), []

    def _on_greeting(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        low = message.lower()
        key = "bye" if _BYE.search(low) else "thanks" if _THANKS.search(low) else "hello"
        return say(state.language, key), []

    def _on_other(self, state: DialogueState, slots: Slots, message: str, history: _History, k: int) -> _Answer:
        return say(state.language, "other"), []

    # ------------------------------------------------------------------ searching
    def _refine(self, state: DialogueState, slots: Slots, history: _History, k: int) -> _Answer:
        """Merge the message's filters into the state, search, and describe the result."""
        before = dict(state.__dict__)
        if slots.category:
            state.category = slots.category
        if slots.min_price is not None or slots.max_price is not None:
            state.min_price, state.max_price = slots.min_price, slots.max_price
        if slots.colour:
            state.colour = slots.colour
        lang = state.language
        if slots.relative_price and state.last_items:
            return self._relative(state, slots.relative_price, history, k, before)
        items = self._search(state, history, k)
        what = self._phrase(state, n=len(items))
        if not items:
            self._restore(state, before)
            return say(lang, "found_none", what=what), []
        state.last_items = [i.item_id for i in items]
        if state.product and not self._product_matched:
            return say(lang, "relaxed", dropped=" ".join(state.product), what=self._phrase(state, with_product=False, n=len(items))), items
        return say(lang, "found", n=len(items), what=what), items

    def _relative(self, state: DialogueState, direction: str, history: _History, k: int,
                  before: dict[str, Any]) -> _Answer:
        """ "Cheaper ones" / "pricier ones": beyond every price shown, else beyond their median."""
        lang = state.language
        prices = [p for p in (self._price(i) for i in state.last_items) if p is not None]
        if not prices:
            self._restore(state, before)
            return say(lang, "no_results_yet"), []
        lower = direction == "lower"
        for bound in ((min(prices) if lower else max(prices)), float(np.median(prices))):
            if lower:
                state.max_price, state.min_price = float(np.nextafter(bound, -np.inf)), None
            else:
                state.min_price, state.max_price = float(np.nextafter(bound, np.inf)), None
            items = self._search(state, history, k)
            if items:
                state.last_items = [i.item_id for i in items]
                key = "cheaper" if lower else "pricier"
                return say(lang, key, n=len(items), what=self._phrase(state, with_price=False, n=len(items)),
                           price=format_price(bound, self.currency)), items
        self._restore(state, before)
        return say(lang, "no_cheaper" if lower else "no_pricier", what=self._phrase(state, with_price=False)), []

    @staticmethod
    def _restore(state: DialogueState, before: dict[str, Any]) -> None:
        """Undo a refinement that matched nothing (the shopper keeps their last results)."""
        state.__dict__.update(before)

    def _mask(self, category: str | None, product: tuple[str, ...], lo: float | None, hi: float | None,
              colour: str | None) -> np.ndarray:
        """Items (n_items,) bool passing hard filters; sets ``_product_matched``."""
        catalog = self._model.catalog_
        n = len(catalog)
        keep = ~self._unavailable if len(self._unavailable) == n else np.ones(n, dtype=bool)
        if category:
            keep &= np.array([any(c.strip().startswith(category) for c in str(raw).split("|"))
                              for raw in catalog.categories], dtype=bool)
        prices = np.asarray(catalog.prices, dtype=np.float64)
        if lo is not None:
            keep &= prices >= lo  # NaN compares False: unknown prices drop out
        if hi is not None:
            keep &= prices <= hi
        if colour:
            keep &= self._has_any(_colour_words(colour))
        self._product_matched = False
        if product:
            has_product = self._has_any([w for t in product for w in _product_words(t)])
            # A product the shop sells is a hard filter (so "cheaper ones" stay candles); one it
            # doesn't sell under this category is left to the ranking by the shopper's words.
            in_category = has_product if not category else has_product & self._mask(category, (), None, None, None)
            if in_category.any():
                keep &= has_product
                self._product_matched = True
        return keep

    def _has_any(self, words: list[str]) -> np.ndarray:
        patterns = [re.compile(rf"\b{re.escape(w)}" if w.isascii() else re.escape(w)) for w in words]
        return np.array([any(p.search(t) for p in patterns) for t in self._item_text], dtype=bool)

    def _search(self, state: DialogueState, history: _History, k: int) -> list[ReplyItem]:
        """Rank the items passing the state's filters with the recommender."""
        keep = self._mask(state.category, state.product, state.min_price, state.max_price, state.colour)
        if not keep.any():
            return []
        if state.similar_to is not None:  # the neighbours of one product, filtered
            pool = self._model.similar(state.similar_to, k=min(len(keep), max(100, 20 * k)))
            return [self._item(i, s, r) for i, s, r in zip(pool.items, pool.scores, pool.reasons)
                    if keep[self._position[i]]][:k]
        catalog = self._model.catalog_
        candidates = tuple(str(i) for i in catalog.item_ids[keep])
        request = Request(request_id=f"chat:{state.conversation_id}", user_id="", history=tuple(history),
                          text=state.query, candidates=candidates)
        rec = self._model.recommend([request], k)[0]
        return [self._item(i, s, r) for i, s, r in zip(rec.items, rec.scores, rec.reasons)]

    # ------------------------------------------------------------------ references and facts
    def _resolve(self, state: DialogueState, slots: Slots, need: int) -> tuple[list[str], str | None]:
        """Item IDs the message refers to (``need`` of them), or an explanation for the shopper."""
        lang = state.language
        found: list[str] = []
        for position in slots.ordinals:
            if not state.last_items or abs(position) > len(state.last_items) or position == 0:
                return [], say(lang, "bad_position", count=len(state.last_items), position=position)
            found.append(state.last_items[position - 1 if position > 0 else -1])
        found += [i for i in slots.items if i not in found]
        if len(found) < need:  # "it", "this one", "these two"
            fallback = [state.focus] if state.focus else []
            fallback += [i for i in state.last_items if i not in fallback]
            found += [i for i in fallback if i not in found][: need - len(found)]
        if len(found) < need:
            return [], say(lang, "compare_need_two" if need == 2 else "which_item")
        return found[:need], None

    def _title(self, item_id: str) -> str:
        title = str(self._model.catalog_.titles[self._position[item_id]]) or item_id
        return title if len(title) <= 60 else title[:57] + "..."

    def _price(self, item_id: str) -> float | None:
        value = float(self._model.catalog_.prices[self._position[item_id]])
        return None if math.isnan(value) else value

    def _item(self, item_id: str, score: float, reason: str) -> ReplyItem:
        catalog = self._model.catalog_
        n = self._position[item_id]
        return ReplyItem(item_id, str(catalog.titles[n]), str(catalog.categories[n]), self._price(item_id),
                         float(score), reason)

    def _answer(self, item_id: str, attribute: str, lang: str) -> str:
        """One product fact from the catalog, phrased for the shopper."""
        catalog = self._model.catalog_
        n = self._position[item_id]
        title = self._title(item_id)
        attrs = catalog.attributes
        if attribute == "price":
            price = self._price(item_id)
            return say(lang, "price_unknown" if price is None else "price", title=title, price=format_price(price, self.currency))
        if attribute == "brand":
            brand = str(catalog.brands[n])
            return say(lang, "brand" if brand else "brand_unknown", title=title, brand=brand)
        if attribute == "category":
            category = str(catalog.categories[n])
            return say(lang, "category" if category else "category_unknown", title=title, category=category)
        if attribute == "stock":
            if len(self._unavailable) == len(catalog) and self._unavailable[n]:
                return say(lang, "stock_no", title=title)
            column = next((c for c in ("in_stock", "stock", "available") if c in attrs.columns), None)
            if column is None or _missing(attrs[column].iloc[n]):
                return say(lang, "stock_unknown", title=title)
            return say(lang, "stock_yes" if _truthy(attrs[column].iloc[n]) else "stock_no", title=title)
        if attribute == "colour":
            column = next((c for c in ("colour", "color") if c in attrs.columns), None)
            if column is not None and not _missing(attrs[column].iloc[n]):
                return say(lang, "colour", title=title, colour=str(attrs[column].iloc[n]))
            from coldbrew.assistant.slots import find_colour

            colour = find_colour(self._item_text[n].replace("色", "色 "))
            return say(lang, "colour" if colour else "colour_unknown", title=title, colour=colour or "")
        description = str(catalog.descriptions[n]) or " · ".join(
            x for x in (str(catalog.categories[n]), str(catalog.brands[n]), format_price(self._price(item_id), self.currency)) if x and x != "?"
        )
        return say(lang, "description", title=title, description=description)

    def _phrase(self, state: DialogueState, with_product: bool = True, with_price: bool = True, n: int = 2) -> str:
        """What is being shown, in words ("red candles under £20")."""
        return describe_filters(
            state.language, category=state.category, product=state.product if with_product else (),
            min_price=state.min_price if with_price else None, max_price=state.max_price if with_price else None,
            colour=state.colour, currency=self.currency, n=n,
        )


def _product_words(term: str) -> list[str]:
    """Ways a product term appears in titles: itself, irregular plurals, Chinese words for it."""
    vocabulary = lexicon()
    words = [term] + [plural for plural, one in vocabulary["irregular_plurals"].items() if one == term]
    words += [zh for zh, en in vocabulary["zh_to_en"].items() if term in {singular(w) for w in en.split()}]
    return list(dict.fromkeys(words))


def _colour_words(colour: str) -> list[str]:
    words = lexicon()["colours"].get(colour, [colour])
    return [w for w in words if w.isascii()] + [w + "色" for w in words if not w.isascii()]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _truthy(value: object) -> bool:
    return str(value).strip().lower() not in {"0", "false", "no", "n", "f", "out", "否"}
