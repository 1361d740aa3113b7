"""Dialogue state and the LRU-bounded conversation store."""

from __future__ import annotations

import threading

import pytest

from coldbrew.assistant import ConversationStore


def test_new_and_existing_conversations():
    store = ConversationStore(3)
    a = store.get("a")
    assert store.get("a") is a and "a" in store
    generated = store.get(None)
    assert len(generated.conversation_id) == 32 and generated.conversation_id in store


def test_least_recently_used_conversation_is_dropped():
    store = ConversationStore(2)
    store.get("a")
    store.get("b")
    store.get("a")  # a is now the most recent
    store.get("c")
    assert "b" not in store and "a" in store and "c" in store and len(store) == 2
    assert store.drop("a") and not store.drop("a")


def test_clear_keeps_identity_and_turns():
    state = ConversationStore().get("x")
    state.category, state.max_price, state.last_items, state.turns, state.language = "Food", 20.0, ["i1"], 4, "zh"
    assert state.filters() == {"category": "Food", "max_price": 20.0}
    state.clear()
    assert (state.conversation_id, state.turns, state.language) == ("x", 4, "zh")
    assert state.category is None and state.last_items == [] and state.filters() == {}


def test_bound_must_be_positive():
    with pytest.raises(ValueError, match="max_conversations"):
        ConversationStore(0)


def test_concurrent_access_keeps_the_bound():
    store = ConversationStore(50)

    def work(offset: int) -> None:
        for i in range(200):
            store.get(f"{offset}-{i}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 50
