"""Slot extraction: prices, colours, ordinals, attributes, categories, products, references."""

from __future__ import annotations

import pytest

from coldbrew.assistant.slots import (
    CatalogVocabulary,
    SlotExtractor,
    detect_language,
    find_attribute,
    find_colour,
    find_ordinals,
    parse_price,
    singular,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("candles under £20", (None, 20.0, None)),
        ("between 10 and 30 pounds", (10.0, 30.0, None)),
        ("from £5 to £12", (5.0, 12.0, None)),
        ("over £50 please", (50.0, None, None)),
        ("at least 15 quid", (15.0, None, None)),
        ("200元以内的红酒", (None, 200.0, None)),
        ("100到200元", (100.0, 200.0, None)),
        ("50-100元", (50.0, 100.0, None)),
        ("300元以上的", (300.0, None, None)),
        ("不超过50块", (None, 50.0, None)),
        ("cheaper ones", (None, None, "lower")),
        ("便宜点的", (None, None, "lower")),
        ("再贵一点", (None, None, "higher")),
        ("something more expensive", (None, None, "higher")),
        ("cheaper than £20", (None, 20.0, None)),
        ("compare number 1 and number 4", (None, None, None)),
        ("a 26 cm skillet", (None, None, None)),
    ],
)
def test_parse_price(text, expected):
    assert parse_price(text) == expected


@pytest.mark.parametrize(
    ("text", "colour"),
    [
        ("only red ones", "red"), ("in grey please", "grey"), ("gray", "grey"),
        ("灰色的毯子", "grey"), ("只看红色的", "red"), ("粉色的有吗", "pink"),
        ("some green tea", None), ("red wine", None), ("推荐红酒", None), ("有绿茶吗", None),
    ],
)
def test_find_colour(text, colour):
    assert find_colour(text) == colour


@pytest.mark.parametrize(
    ("text", "ordinals"),
    [
        ("the second one", (2,)), ("compare the first and the third", (1, 3)),
        ("how do the 2nd and 3rd differ", (2, 3)), ("number 4", (4,)), ("the last one", (-1,)),
        ("第二个多少钱", (2,)), ("比较1号和3号", (1, 3)), ("最后一个", (-1,)), ("第10个", (10,)),
        ("show me candles", ()),
    ],
)
def test_find_ordinals(text, ordinals):
    assert find_ordinals(text) == ordinals


@pytest.mark.parametrize(
    ("text", "attribute"),
    [
        ("how much is it", "price"), ("what brand is it", "brand"), ("who makes it", "brand"),
        ("is it in stock?", "stock"), ("what colour is it", "colour"), ("which category", "category"),
        ("tell me about it", "description"), ("多少钱", "price"), ("是什么牌子的", "brand"),
        ("有货吗", "stock"), ("什么颜色", "colour"), ("介绍一下", "description"),
    ],
)
def test_find_attribute(text, attribute):
    assert find_attribute(text) == attribute


def test_language_and_singular():
    assert detect_language("show me candles") == "en"
    assert detect_language("我想买 candle") == "zh"
    assert [singular(w) for w in ("candles", "boxes", "knives", "glasses", "toys", "parties", "glass")] == [
        "candle", "box", "knife", "glass", "toy", "party", "glass"]


@pytest.fixture(scope="module")
def extractor(shop_catalog):
    return SlotExtractor(CatalogVocabulary.from_catalog(shop_catalog))


def test_topic_category_and_product(extractor):
    slots = extractor.extract("show me red candles under £20", "find_products")
    assert slots.product == ("candle",) and slots.colour == "red" and slots.max_price == 20.0
    assert extractor.extract("any green tea?", "find_products").category == "Food > Tea"
    assert extractor.extract("something for the kitchen", "find_products").category == "Home > Kitchen"
    assert extractor.extract("home stuff", "find_products").category == "Home"
    zh = extractor.extract("我想买200元以内的蜡烛", "find_products")
    assert zh.product == ("candle",) and zh.max_price == 200.0
    assert extractor.extract("有茶壶吗", "find_products").product == ("teapot",)
    assert extractor.extract("给我看看红酒", "find_products").category == "Food > Wine"


def test_references_by_title_and_ordinal(extractor):
    assert extractor.extract("similar to the oak desk lamp", "similar").items == ("l1",)
    assert extractor.extract("和铁观音类似的", "similar").items == ("t2",)
    assert extractor.extract("compare the earl grey and the sencha", "compare").items == ("t3", "t1")
    assert extractor.extract("铁观音和干红比较", "compare").items == ("t2", "w2")
    assert extractor.extract("compare the first and the second", "compare").ordinals == (1, 2)
    assert extractor.extract("how much is the blue enamel mug", "ask_attribute").to_dict() == {
        "items": ["m2"], "attribute": "price"}
    assert extractor.extract("more like this one", "similar").items == ()


def test_item_ids_are_references(extractor):
    assert extractor.extract("compare c1 and c2", "compare").items == ("c1", "c2")


def test_intents_without_slots(extractor):
    for intent in ("reset", "greeting", "other"):
        assert extractor.extract("start over with red candles under £5", intent).to_dict() == {}


def test_bad_message_type(extractor):
    with pytest.raises(TypeError, match="message must be a string"):
        extractor.extract(None, "find_products")  # type: ignore[arg-type]
