"""Optional generative phrasing of the assistant's answers (an OpenAI-compatible endpoint).

The templated answer stays the default and the fallback: :class:`ChatCompletionPhraser`
sends the template text, the shopper's message and the facts of the products shown to
``<url>/v1/chat/completions`` and asks for one or two friendly sentences in the shopper's
language that use only those facts; on any HTTP error, timeout or malformed answer the
template text is used. The products in a reply never come from the model server.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from coldbrew.errors import ConfigError

__all__ = ["Phraser", "ChatCompletionPhraser"]

_MAX_CHARS = 400


class Phraser(Protocol):
    """Rewrites a templated answer; returns ``(text, source)`` with source "llm" or "template"."""

    def phrase(self, draft: str, message: str, language: str, facts: Sequence[dict[str, Any]]) -> tuple[str, str]:
        ...


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


class ChatCompletionPhraser:
    """Phrases answers with an OpenAI-compatible ``/v1/chat/completions`` server.

    Parameters
    ----------
    url: the server (``http://host:port``, ``.../v1`` or the full endpoint).
    model: the model name sent in the request.
    api_key: sent as ``Authorization: Bearer ...`` when given.
    timeout: seconds before falling back to the template.

    Needs ``httpx`` (extra ``server``); without it every answer keeps its template text.
    """

    def __init__(self, url: str, model: str = "default", api_key: str | None = None, timeout: float = 5.0) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise ConfigError(f"phrasing backend url: expected http(s)://..., got {url!r}")
        if timeout <= 0:
            raise ConfigError(f"phrasing backend timeout: expected seconds > 0, got {timeout}")
        self.url = _endpoint(url)
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.last_error: str | None = None

    def _messages(self, draft: str, message: str, language: str, facts: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
        lang = "Simplified Chinese" if language == "zh" else "English"
        lines = []
        for n, f in enumerate(facts, start=1):
            price = f.get("price")
            shown = "-" if price is None or not math.isfinite(price) else f"{price:g}"
            lines.append(f"{n}. {f.get('title', '')} (category: {f.get('category') or '-'}, price: {shown})")
        return [
            {"role": "system", "content": f"You are a shop assistant. Answer in {lang} in at most two short"
             " sentences. Use only the facts given: never invent products, prices or stock."},
            {"role": "user", "content": f"Shopper: {message}\nProducts shown:\n" + ("\n".join(lines) or "(none)")
             + f"\nDraft answer: {draft}\nRewrite the draft answer."},
        ]

    def phrase(self, draft: str, message: str, language: str, facts: Sequence[dict[str, Any]]) -> tuple[str, str]:
        """The server's wording of ``draft`` (source "llm"), or ``draft`` itself (source "template")."""
        from coldbrew.text.completions import CompletionError, chat_completion

        try:
            text = chat_completion(self.url, self._messages(draft, message, language, facts), model=self.model, api_key=self.api_key,
                                   max_tokens=120, temperature=0.3, timeout=self.timeout)
        except CompletionError as exc:
            self.last_error = str(exc)
            return draft, "template"
        self.last_error = None
        return text[:_MAX_CHARS], "llm"
