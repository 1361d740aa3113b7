"""``coldbrew chat``: the shopping assistant on stdin/stdout (a terminal or a pipe)."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from coldbrew.assistant.phrases import format_price
from coldbrew.assistant.reply import Assistant, Reply

__all__ = ["run_chat", "format_reply"]

_QUIT = {"quit", "exit", ":q", "退出"}


def format_reply(reply: Reply, currency: str = "£") -> str:
    """A reply as a few lines of text: the answer, then the products, numbered."""
    lines = [f"assistant [{reply.intent}]: {reply.text}"]
    for n, item in enumerate(reply.items, start=1):
        lines.append(f"  {n}. {item.title[:60]}  {format_price(item.price, currency)}  [{item.item_id}]  {item.reason}")
    return "\n".join(lines)


def run_chat(model_dir: str, k: int = 5, as_json: bool = False, conversation_id: str = "cli",
             stdin: TextIO | None = None, stdout: TextIO | None = None,
             phrase_url: str | None = None, phrase_model: str = "default") -> int:
    """Answer every line of ``stdin`` until EOF or "quit"; returns the exit code.

    ``phrase_url``: an OpenAI-compatible server that rewords the templated answers
    (``COLDBREW_PHRASE_API_KEY`` in the environment is sent as its bearer token).
    """
    import os

    from coldbrew.assistant.phrasing import ChatCompletionPhraser
    from coldbrew.storage import load_model

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty()
    phraser = None
    if phrase_url:
        phraser = ChatCompletionPhraser(phrase_url, phrase_model, os.environ.get("COLDBREW_PHRASE_API_KEY"))
    assistant = Assistant(load_model(model_dir), k=k, phraser=phraser)
    if interactive:
        print("coldbrew shopping assistant — English or 中文; 'reset' starts over, 'quit' ends.", file=stdout)
    while True:
        if interactive:
            print("> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            return 0
        message = line.strip()
        if not message:
            continue
        if message.lower() in _QUIT:
            return 0
        reply = assistant.reply(conversation_id, message)
        if as_json:
            print(json.dumps(reply.to_dict(), ensure_ascii=False), file=stdout, flush=True)
        else:
            print(format_reply(reply, assistant.currency), file=stdout, flush=True)
