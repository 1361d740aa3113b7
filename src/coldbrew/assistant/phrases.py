"""The assistant's short answers, templated in English and Chinese."""

from __future__ import annotations

import math

__all__ = ["PHRASES", "say", "describe_filters", "format_price"]

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "found": "Here {are} {n} {what}.",
        "found_none": "I couldn't find any {what}. Try a wider price range or another word.",
        "relaxed": "I couldn't find {dropped} exactly, so here are the closest {what}.",
        "cheaper": "Here {are} {n} cheaper {what} (under {price}).",
        "pricier": "Here {are} {n} pricier {what} (over {price}).",
        "no_cheaper": "Those were already the cheapest {what} I have.",
        "no_pricier": "Those were already the most expensive {what} I have.",
        "no_results_yet": "Tell me what you are looking for first, for example \"candles under £20\".",
        "recommend": "Picked for you from your history: {n} {what}.",
        "recommend_cold": "I don't know your taste yet, so here are {n} popular {what}. Tell me what you like!",
        "similar": "{n} {what} similar to {title}.",
        "which_item": "Which product do you mean? Give part of its name or say \"the first one\".",
        "bad_position": "There is no number {position}: I showed {count} product(s) last.",
        "compare_need_two": "Which two products should I compare? For example \"compare the first and the second\".",
        "compare": "{a} costs {pa} and {b} costs {pb}{cheaper}.{categories}{brands}",
        "compare_cheaper": "; {title} is cheaper by {diff}",
        "compare_same_price": "; they cost the same",
        "compare_brands": " Brands: {ba} and {bb}.",
        "compare_categories": " {a} is in {ca}, {b} in {cb}.",
        "price": "{title} costs {price}.",
        "price_unknown": "I don't have a price for {title}.",
        "brand": "{title} is made by {brand}.",
        "brand_unknown": "The catalog doesn't name a brand for {title}.",
        "category": "{title} is in {category}.",
        "category_unknown": "{title} has no category in the catalog.",
        "stock_yes": "Yes, {title} is in stock.",
        "stock_no": "Sorry, {title} is out of stock right now.",
        "stock_unknown": "The catalog has no stock information for {title}; it is listed for sale.",
        "colour": "{title}: {colour}.",
        "colour_unknown": "The catalog doesn't state a colour for {title}.",
        "description": "{title}: {description}",
        "reset": "OK, let's start again. What are you looking for?",
        "hello": "Hello! I can find products, recommend things for you, show similar items and compare them. What are you looking for?",
        "thanks": "You're welcome! Anything else?",
        "bye": "Goodbye, happy shopping!",
        "other": "Sorry, I can only help with shopping: finding, recommending and comparing products.",
        "products": "products",
        "under": "under {price}",
        "over": "over {price}",
        "between": "{lo} to {hi}",
        "in": "in {category}",
    },
    "zh": {
        "found": "为你找到 {n} 件{what}。",
        "found_none": "没有找到{what}。可以放宽价格或换个说法试试。",
        "relaxed": "没有完全符合“{dropped}”的商品，这是最接近的 {what}。",
        "cheaper": "这是 {n} 件更便宜的{what}，低于 {price}。",
        "pricier": "这是 {n} 件更贵的{what}，高于 {price}。",
        "no_cheaper": "刚才的已经是最便宜的{what}了。",
        "no_pricier": "刚才的已经是最贵的{what}了。",
        "no_results_yet": "请先告诉我想找什么，比如“200元以内的蜡烛”。",
        "recommend": "根据你的记录为你挑选了 {n} 件{what}。",
        "recommend_cold": "我还不了解你的喜好，先看看这 {n} 件热门{what}，也可以告诉我你喜欢什么！",
        "similar": "和 {title} 相似的 {n} 件{what}。",
        "which_item": "你指的是哪件商品？可以说出名称的一部分，或者说“第一个”。",
        "bad_position": "我只展示了 {count} 件商品，没有第 {position} 个。",
        "compare_need_two": "要比较哪两件商品？比如“比较第一个和第二个”。",
        "compare": "{a} 售价 {pa}，{b} 售价 {pb}{cheaper}。{categories}{brands}",
        "compare_cheaper": "，{title} 便宜 {diff}",
        "compare_same_price": "，两者价格相同",
        "compare_brands": "品牌分别是 {ba} 和 {bb}。",
        "compare_categories": "{a} 属于 {ca}，{b} 属于 {cb}。",
        "price": "{title} 的价格是 {price}。",
        "price_unknown": "目录里没有 {title} 的价格。",
        "brand": "{title} 的品牌是 {brand}。",
        "brand_unknown": "目录里没有 {title} 的品牌信息。",
        "category": "{title} 属于 {category}。",
        "category_unknown": "{title} 在目录里没有类别。",
        "stock_yes": "有货，{title} 现在可以购买。",
        "stock_no": "抱歉，{title} 暂时缺货。",
        "stock_unknown": "目录里没有 {title} 的库存信息，它目前在售。",
        "colour": "{title}：{colour}。",
        "colour_unknown": "目录里没有写 {title} 的颜色。",
        "description": "{title}：{description}",
        "reset": "好的，我们重新开始。你想找什么？",
        "hello": "你好！我可以帮你找商品、个性化推荐、找相似商品和做比较。想找点什么？",
        "thanks": "不客气！还需要什么吗？",
        "bye": "再见，购物愉快！",
        "other": "抱歉，我只能帮你购物：找商品、推荐和比较商品。",
        "products": "商品",
        "under": "{price}以内",
        "over": "{price}以上",
        "between": "{lo}到{hi}",
        "in": "{category}类",
    },
}

_ZH_COLOURS = {
    "red": "红色", "blue": "蓝色", "green": "绿色", "white": "白色", "black": "黑色", "pink": "粉色",
    "grey": "灰色", "yellow": "黄色", "orange": "橙色", "purple": "紫色", "brown": "棕色",
    "gold": "金色", "silver": "银色", "beige": "米色",
}


def say(language: str, key: str, **values: object) -> str:
    """The phrase ``key`` in ``language`` ("en" or "zh"), filled with ``values``."""
    table = PHRASES.get(language, PHRASES["en"])
    values.setdefault("are", "is" if values.get("n") == 1 else "are")
    return table[key].format(**values)


def format_price(value: float | None, currency: str = "£") -> str:
    """``£12.5`` style; ``?`` for an unknown price."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    return f"{currency}{value:,.2f}".replace(".00", "")


def _zh_word(term: str) -> str:
    """The first Chinese word of the vocabulary for an English product term (else the term)."""
    from coldbrew.assistant.slots import lexicon

    return next((zh for zh, en in lexicon()["zh_to_en"].items() if en == term), term)


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def describe_filters(language: str, *, category: str | None = None, product: tuple[str, ...] = (),
                     min_price: float | None = None, max_price: float | None = None,
                     colour: str | None = None, currency: str = "£", n: int = 2) -> str:
    """A short noun phrase for what is shown: "red candles in Home > Decor under £20" /
    "红色candle（Home > Decor，£20以内）"; ``n`` picks the English singular or plural.
    """
    zh = language == "zh"
    if zh and product:
        product = tuple(_zh_word(p) for p in product)
    if product:
        noun = " ".join(product[:-1] + ((product[-1] if n == 1 or zh else _plural(product[-1])),))
    else:
        noun = say(language, "products") if n != 1 or zh else "product"
    if colour:
        noun = (_ZH_COLOURS.get(colour, colour) if zh else colour + " ") + noun
    qualifiers = []
    if category:
        qualifiers.append(category if zh else say(language, "in", category=category))
    if min_price is not None and max_price is not None:
        qualifiers.append(say(language, "between", lo=format_price(min_price, currency), hi=format_price(max_price, currency)))
    elif max_price is not None:
        qualifiers.append(say(language, "under", price=format_price(max_price, currency)))
    elif min_price is not None:
        qualifiers.append(say(language, "over", price=format_price(min_price, currency)))
    if not qualifiers:
        return noun
    return noun + "（" + "，".join(qualifiers) + "）" if zh else noun + " " + " ".join(qualifiers)
