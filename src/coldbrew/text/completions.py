"""One call to an OpenAI-compatible ``/v1/chat/completions`` endpoint, for optional phrasing.

The shopping assistant and the promotion copywriter can hand their template text to a
language model server configured by URL; both use :func:`chat_completion` and fall back to
their template when it raises :class:`CompletionError`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompletionError", "chat_completion"]


class CompletionError(Exception):
    """The endpoint could not give a usable completion; the message says why."""


def chat_completion(url: str, messages: list[dict[str, str]], *, model: str, api_key: str | None = None,
                    max_tokens: int = 120, temperature: float = 0.3, timeout: float = 5.0) -> str:
    """The first choice's text (whitespace collapsed) for ``messages`` posted to ``url``.

    Raises :class:`CompletionError` when httpx is missing, on any HTTP or network error, on a
    malformed answer, or when the completion is empty.
    """
    try:
        import httpx
    except ImportError:
        raise CompletionError("httpx is not installed (pip install 'coldbrew[server]')") from None
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens,
                            "temperature": temperature}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
        response.raise_for_status()
        text = response.json()["choices"][0]["message"]["content"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty completion")
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise CompletionError(f"{type(exc).__name__}: {exc}") from None
    return " ".join(text.split())
