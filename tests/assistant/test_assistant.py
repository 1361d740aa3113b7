"""Multi-turn dialogues: topic and filters carried across turns, references, reset, Chinese."""

from __future__ import annotations

import json

import pytest

from coldbrew.errors import DataError, NotFittedError
from coldbrew.requests import HistoryEvent


def _prices(reply) -> list[float]:
    return [i.price for i in reply.items]


def test_find_then_cheaper_keeps_the_product_and_lowers_the_price(assistant):
    first = assistant.reply("c", "show me candles", k=3)
    assert first.intent == "find_products" and first.slots["product"] == ["candle"]
    assert len(first.items) == 3 and all(i.item_id.startswith("c") for i in first.items)
    cheaper = assistant.reply("c", "cheaper ones")
    assert cheaper.intent == "filter" and cheaper.slots == {"relative_price": "lower"}
    assert cheaper.items, cheaper.text
    assert all(i.item_id.startswith("c") for i in cheaper.items)  # still candles
    assert max(_prices(cheaper)) < max(_prices(first))
    assert cheaper.filters["product"] == ["candle"] and cheaper.filters["max_price"] < max(_prices(first))
    assert "cheaper" in cheaper.text


def test_filter_turn_keeps_the_category(assistant):
    tea = assistant.reply("t", "show me tea")
    assert tea.slots["category"] == "Food > Tea"
    assert {i.category for i in tea.items} == {"Food > Tea"}
    cheap = assistant.reply("t", "under £20 only")
    assert cheap.intent == "filter" and cheap.slots == {"max_price": 20.0}
    assert cheap.items and {i.category for i in cheap.items} == {"Food > Tea"}
    assert all(p <= 20 for p in _prices(cheap))
    assert cheap.filters == {"category": "Food > Tea", "max_price": 20.0}


def test_colour_filter_across_turns(assistant):
    assistant.reply("r", "show me candles")
    red = assistant.reply("r", "只要红色的")
    assert red.intent == "filter" and red.slots == {"colour": "red"}
    assert [i.item_id for i in red.items] == ["c5"]


def test_chinese_conversation(assistant):
    found = assistant.reply("zh", "给我看看蜡烛")
    assert found.intent == "find_products" and found.language == "zh"
    assert found.items and all(i.item_id.startswith("c") for i in found.items)
    assert "找到" in found.text and "蜡烛" in found.text
    cheaper = assistant.reply("zh", "便宜点的")
    assert cheaper.intent == "filter" and cheaper.items
    assert max(_prices(cheaper)) < max(_prices(found)) and "便宜" in cheaper.text
    second = cheaper.items[1] if len(cheaper.items) > 1 else None
    asked = assistant.reply("zh", "第二个多少钱")
    assert asked.intent == "ask_attribute" and asked.slots == {"ordinals": [2], "attribute": "price"}
    if second is not None:
        assert [i.item_id for i in asked.items] == [second.item_id]
        assert f"£{second.price:g}" in asked.text and "价格" in asked.text


def test_reset_forgets_topic_and_results(assistant):
    assistant.reply("x", "show me candles")
    reset = assistant.reply("x", "start over")
    assert reset.intent == "reset" and reset.items == [] and reset.filters == {}
    after = assistant.reply("x", "cheaper ones")
    assert after.items == [] and "looking for" in after.text
    zh = assistant.reply("x", "重新开始")
    assert zh.intent == "reset" and "重新开始" in zh.text


def test_references_to_shown_products(assistant):
    shown = assistant.reply("ref", "show me candles")
    ids = [i.item_id for i in shown.items]
    compared = assistant.reply("ref", "compare the first and the second")
    assert compared.intent == "compare" and [i.item_id for i in compared.items] == ids[:2]
    assert "cheaper" in compared.text or "same" in compared.text
    price = assistant.reply("ref", "how much is the second one?")
    assert price.intent == "ask_attribute" and [i.item_id for i in price.items] == [ids[1]]
    similar = assistant.reply("ref", "similar to the second one")
    assert similar.intent == "similar" and similar.items and ids[1] not in [i.item_id for i in similar.items]
    missing = assistant.reply("ref", "how much is the ninth one?")
    assert missing.items == [] and "9" in missing.text


def test_references_by_title(assistant):
    reply = assistant.reply("title", "compare the earl grey and the sencha")
    assert reply.intent == "compare" and [i.item_id for i in reply.items] == ["t3", "t1"]
    assert "Earl Grey black tea is cheaper by £4" in reply.text
    brand = assistant.reply("title", "what brand is the cast iron teapot?")
    assert brand.intent == "ask_attribute" and "Kettle" in brand.text


def test_recommend_uses_the_history(assistant):
    history = [HistoryEvent("t1", 1_700_100_000, "purchase"), HistoryEvent("t3", 1_700_200_000, "purchase")]
    warm = assistant.reply("h", "recommend something for me", user_history=history)
    assert warm.intent == "recommend" and warm.items and "history" in warm.text
    assert not {"t1", "t3"} & {i.item_id for i in warm.items}
    cold = assistant.reply("h2", "recommend something for me")
    assert cold.items and "popular" in cold.text


def test_nothing_found_keeps_the_previous_state(assistant):
    assistant.reply("n", "show me candles")
    none = assistant.reply("n", "show me candles over £500")
    assert none.items == [] and "couldn't find" in none.text
    assert "min_price" not in none.filters
    assert assistant.reply("n", "only red ones").items  # the earlier candles are still the topic


def test_unavailable_items_are_hidden_and_out_of_stock(shop_model):
    from coldbrew.assistant import Assistant, IntentExample, load_examples

    # The stock answer is the subject here, not the classifier: the hashing encoder's
    # character n-grams need this wording among the examples to recognise the question.
    examples = load_examples() + [IntentExample("is the vanilla scented candle in stock?", "ask_attribute")]
    assistant = Assistant(shop_model, encoder=shop_model.encoder, examples=examples)
    reply = assistant.reply("u", "show me candles", unavailable={"c1"})
    assert "c1" not in [i.item_id for i in reply.items]
    asked = assistant.reply("u", "is the vanilla scented candle in stock?", unavailable={"c1"})
    assert asked.intent == "ask_attribute" and [i.item_id for i in asked.items] == ["c1"]
    assert "out of stock" in asked.text
    listed = assistant.reply("u", "is the vanilla scented candle in stock?")
    assert "no stock information" in listed.text


def test_greeting_other_and_json(assistant):
    hello = assistant.reply(None, "hello")
    assert hello.intent == "greeting" and len(hello.conversation_id) == 32
    joke = assistant.reply(None, "tell me a joke")
    assert joke.intent == "other" and joke.items == []
    assert json.loads(json.dumps(assistant.reply("j", "show me mugs").to_dict(), ensure_ascii=False))["items"]


@pytest.mark.parametrize(
    ("message", "k", "error"),
    [("", None, "field 'message'"), ("   ", None, "field 'message'"), ("x" * 2001, None, "at most 2000"),
     ("show me candles", 0, "field 'k'")],
)
def test_bad_input_names_the_field(assistant, message, k, error):
    with pytest.raises(DataError, match=error):
        assistant.reply("e", message, k=k)


def test_unfitted_model_is_refused():
    from coldbrew.assistant import Assistant
    from coldbrew.pipeline import Recommender

    with pytest.raises(NotFittedError):
        Assistant(Recommender()).reply("c", "hello")
    with pytest.raises(ValueError, match="k must be"):
        Assistant(Recommender(), k=0)


def test_conversation_bound_and_new_items(shop_paths, hashing_classifier):
    """Least recently used conversations are dropped; items added to the model can be found."""
    import pandas as pd

    from coldbrew.assistant import Assistant
    from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
    from coldbrew.data import load_catalog, load_events
    from coldbrew.data.catalog import catalog_from_frame
    from coldbrew.pipeline import Recommender

    catalog, _ = load_catalog(shop_paths[0])
    events, _ = load_events(shop_paths[1])
    model = Recommender(FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))).fit(catalog, events)
    assistant = Assistant(model, classifier=hashing_classifier, max_conversations=2)
    for cid in ("a", "b", "c"):
        assistant.reply(cid, "hello")
    assert "a" not in assistant.conversations and len(assistant.conversations) == 2
    frame = pd.DataFrame({"item_id": ["v9"], "title": ["Glass lantern with candle"], "category": ["Home > Decor"], "price": [3.0]})
    new, _ = catalog_from_frame(frame, "new items")
    model.add_items(new)
    cheapest = assistant.reply("d", "show me candles under £4")
    assert [i.item_id for i in cheapest.items] == ["v9"]


def test_filters_after_similar_refine_the_similar_list(assistant, shop_model):
    similar = assistant.reply("s", "similar to the oak desk lamp", k=10)
    assert similar.intent == "similar" and similar.slots == {"items": ["l1"]}
    cheap = assistant.reply("s", "under £20 only", k=10)
    assert cheap.intent == "filter" and cheap.items and all(p <= 20 for p in _prices(cheap))
    neighbours = shop_model.similar("l1", k=len(shop_model.catalog_)).items
    assert [i.item_id for i in cheap.items] == [i for i in neighbours if shop_model.catalog_.prices[list(shop_model.catalog_.item_ids).index(i)] <= 20][:10]
