"""Short personalised promotion copy: templates (default) or an OpenAI-compatible endpoint.

The template path is deterministic and offline. The generative path posts the same facts to
``<url>/v1/chat/completions`` and falls back to the template on any error or timeout, so a
slow or broken model server never breaks a page.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Protocol

from coldbrew.errors import ConfigError, DataError

__all__ = ["LANGUAGES", "ChatCompletionCopywriter", "Copywriter", "ProductFacts", "TemplateCopywriter"]

LANGUAGES = ("en", "zh")
_MAX_CHARS = 200

_EN = (
    "{title}{deal}. Picked for you because you like {interest}.",
    "Into {interest}? {title}{deal}.",
    "{title}: a match for your taste in {interest}{deal_tail}.",
)
_EN_NO_INTEREST = (
    "{title}{deal}. A popular pick in {category}.",
    "Discover {title}{deal}.",
)
_ZH = (
    "{title}{deal}，根据您对{interest}的喜好为您推荐。",
    "喜欢{interest}？{title}{deal}。",
    "为您精选：{title}{deal}，与您喜欢的{interest}很配。",
)
_ZH_NO_INTEREST = (
    "{title}{deal}，{category}热门好物。",
    "发现好物：{title}{deal}。",
)


@dataclass(frozen=True)
class ProductFacts:
    """What the copy may say about the product and the shopper."""

    title: str
    category: str = ""
    price: float | None = None
    discount_percent: float | None = None
    interests: tuple[str, ...] = ()
    currency: str = "£"


class Copywriter(Protocol):
    def write(self, facts: ProductFacts, language: str = "en", seed: str = "") -> tuple[str, str]:
        """``(text, source)`` where source is ``"template"`` or ``"llm"``."""
        ...


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise DataError(f"language: expected one of {', '.join(LANGUAGES)}, got {language!r}")


def _money(value: float, currency: str) -> str:
    return f"{currency}{value:,.2f}"


def _deal(facts: ProductFacts, language: str) -> tuple[str, str]:
    """The price/discount clause, and a trailing variant for templates that end with it."""
    price = facts.price if facts.price is not None and math.isfinite(facts.price) and facts.price > 0 else None
    d = facts.discount_percent
    if language == "zh":
        if d and price is not None:
            now = price * (1 - d / 100)
            text = f"限时{(100 - d) / 10:g}折，仅需{_money(now, facts.currency)}（原价{_money(price, facts.currency)}）"
        elif d:
            text = f"限时{(100 - d) / 10:g}折"
        elif price is not None:
            text = f"仅需{_money(price, facts.currency)}"
        else:
            text = ""
        return ("，" + text if text else ""), text
    if d and price is not None:
        now = price * (1 - d / 100)
        text = f"{d:g}% off: now {_money(now, facts.currency)} (was {_money(price, facts.currency)})"
    elif d:
        text = f"{d:g}% off for a limited time"
    elif price is not None:
        text = f"only {_money(price, facts.currency)}"
    else:
        text = ""
    return (" - " + text if text else ""), (", " + text if text else "")


def _pick(options: tuple[str, ...], seed: str) -> str:
    digest = hashlib.blake2b(seed.encode("utf-8"), digest_size=4).digest()
    return options[int.from_bytes(digest, "big") % len(options)]


class TemplateCopywriter:
    """Fills one of a few English or Chinese templates (chosen by a stable hash of ``seed``)."""

    def write(self, facts: ProductFacts, language: str = "en", seed: str = "") -> tuple[str, str]:
        _check_language(language)
        title = " ".join(str(facts.title).split()) or "this product"
        if language == "en" and title.isupper():  # catalog titles in capitals read as shouting
            title = title.capitalize()
        deal, tail = _deal(facts, language)
        interests = [i for i in facts.interests if i.strip()]
        joiner = "、" if language == "zh" else " and "
        interest = joiner.join(interests[:2])
        category = facts.category.split(">")[-1].split("|")[0].strip() or ("本店" if language == "zh" else "our shop")
        if interest:
            template = _pick(_ZH if language == "zh" else _EN, seed + title)
        else:
            template = _pick(_ZH_NO_INTEREST if language == "zh" else _EN_NO_INTEREST, seed + title)
        text = template.format(title=title, deal=deal, deal_tail=tail, interest=interest, category=category)
        return text[:_MAX_CHARS], "template"


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


class ChatCompletionCopywriter:
    """Phrases the copy with an OpenAI-compatible ``/v1/chat/completions`` server.

    ``url`` is the server (``http://host:port``, ``.../v1`` or the full endpoint). The
    template text is sent as a draft; any HTTP error, timeout, malformed or empty answer
    returns the template instead (source ``"template"``). Needs ``httpx`` (extra ``server``).
    """

    def __init__(self, url: str, model: str = "default", api_key: str | None = None,
                 timeout: float = 5.0, fallback: TemplateCopywriter | None = None) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise ConfigError(f"copy backend url: expected http(s)://..., got {url!r}")
        if timeout <= 0:
            raise ConfigError(f"copy backend timeout: expected seconds > 0, got {timeout}")
        self.url = _endpoint(url)
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.fallback = fallback or TemplateCopywriter()
        self.last_error: str | None = None

    def _messages(self, facts: ProductFacts, language: str, draft: str) -> list[dict[str, str]]:
        lang = "Simplified Chinese" if language == "zh" else "English"
        price = "" if facts.price is None or not math.isfinite(facts.price) else f"{facts.currency}{facts.price:.2f}"
        facts_text = (f"Product: {facts.title}\nCategory: {facts.category or '-'}\nPrice: {price or '-'}\n"
                      f"Discount: {facts.discount_percent or 0:g}%\nShopper interests: {', '.join(facts.interests) or '-'}\n"
                      f"Draft: {draft}")
        return [
            {"role": "system", "content": f"You write one short, friendly promotion line in {lang}"
             f" (at most 25 words). Use only the facts given; never invent prices or discounts."},
            {"role": "user", "content": facts_text},
        ]

    def write(self, facts: ProductFacts, language: str = "en", seed: str = "") -> tuple[str, str]:
        draft, _ = self.fallback.write(facts, language, seed)
        from coldbrew.text.completions import CompletionError, chat_completion

        try:
            text = chat_completion(self.url, self._messages(facts, language, draft), model=self.model, api_key=self.api_key,
                                   max_tokens=80, temperature=0.7, timeout=self.timeout)
        except CompletionError as exc:
            self.last_error = str(exc)
            return draft, "template"
        self.last_error = None
        return text[:_MAX_CHARS], "llm"
