"""The assistant tab of the web page in headless Chromium: a conversation across turns.

Reuses the server, browser and page fixtures of ``test_browser`` (the demo shop, hashing
encoder for the catalog; the assistant's intents use the bundled USE).
"""

from __future__ import annotations

import pytest

from .test_browser import _open, browser, demo_model, open_server, page, report_dir  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _assistant_turn(page, message: str, turn: int) -> list[str]:  # noqa: F811
    """Send one message; the item IDs of the assistant's answer number ``turn`` (1-based)."""
    page.fill("#chat-message", message)
    page.press("#chat-message", "Enter")
    page.wait_for_function("n => document.querySelectorAll('#chat-log .bubble.assistant').length >= n", arg=turn)
    lists = page.query_selector_all("#chat-log > ol")
    return [node.get_attribute("data-item-id") for node in lists[turn - 1].query_selector_all("[data-item-id]")]


def test_chat_tab_keeps_the_conversation(open_server, page) -> None:  # noqa: F811
    _open(page, open_server)
    page.click(".tab[data-tab=chat]")
    teas = _assistant_turn(page, "show me tea", 1)
    assert teas and all(i.startswith("tea-") for i in teas)
    assert "find_products" in page.inner_text("#chat-log .bubble.assistant >> nth=0")
    cheaper = _assistant_turn(page, "cheaper ones", 2)
    assert cheaper and all(i.startswith("tea-") for i in cheaper) and set(cheaper) != set(teas)
    candles = _assistant_turn(page, "给我看看蜡烛", 3)
    assert candles == ["home-004"]
    assert "蜡烛" in page.inner_text("#chat-log .bubble.assistant >> nth=2")
    page.click("#chat-reset")
    assert page.query_selector_all("#chat-log .bubble") == []
    assert page.errors == []
