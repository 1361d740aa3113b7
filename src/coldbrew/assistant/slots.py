"""Rule-based, bilingual (English + Chinese) slot extraction for the shopping assistant.

Slots are read from one message with regular expressions and a small bundled retail
vocabulary (``data/lexicon.json``: Chinese -> English terms, product nouns, colour words)
matched against the catalog's own categories and titles:

* **prices**: "under £20", "between 10 and 30 pounds", "from £5 to £12", "over 50",
  "200元以内", "100到200元", "50-100元", "300元以上"; comparatives without a number
  ("cheaper ones", "便宜点的", "贵一点的") become ``relative_price`` = lower / higher;
* **colour**: English colour words, or Chinese colour characters followed by 色 or 的 (so
  that 红酒 and 绿茶 are products, not colours); "green tea" and "red wine" likewise;
* **category**: a catalog category path whose segment names a word of the message (Chinese
  words are translated through the vocabulary first); several words pick the path holding
  them all ("baby clothes" -> "Baby > Clothing");
* **product**: product nouns ("candles" -> candle, "跑步鞋" -> shoe); other catalog title
  words become ``keywords``;
* **references** (for similar / compare / ask): ordinals ("the second one", "第二个",
  "number 3", "最后一个" -> -1) and title fragments resolved to item IDs by IDF-weighted
  token overlap (English words, Chinese character bigrams and their translations), one per
  part of a comparison ("X and Y", "X vs Y", "X和Y");
* **attribute** (for ask): price, brand, category, stock, colour or description.

Size (about 450 lines): one extractor per slot above, all sharing the tokeniser and the
bundled vocabulary.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from typing import Any

import numpy as np

from coldbrew.data.catalog import Catalog

__all__ = [
    "CatalogVocabulary",
    "Slots",
    "SlotExtractor",
    "detect_language",
    "parse_price",
    "find_colour",
    "find_ordinals",
    "find_attribute",
    "lexicon",
    "singular",
]

ATTRIBUTES = ("price", "brand", "category", "stock", "colour", "description")

_EN_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_STOP = frozenset(
    """a an the this that these those it its one ones me my i i'm i'd you your we us our some any
    anything something things thing item items product products stuff of for to in on at by with and or
    but is are was be do does did have has got get show find search looking look want need like liked
    would could can please just only more most other else same kind sort style similar alternative
    alternatives compare comparison versus vs between which what who how much many about tell give
    see let new pair set""".split()
)
_RELATIVE = {
    "lower": re.compile(
        r"cheaper|less expensive|lower[- ]priced|lower price|more affordable|less pricey|"
        r"更便宜|便宜点|便宜一点|便宜些|便宜一些|便宜的吗|价格低一点|低一点|实惠一点|更实惠"
    ),
    "higher": re.compile(
        r"pricier|more expensive|higher[- ]end|dearer|more premium|fancier|"
        r"更贵|贵点|贵一点|贵一些|贵些|高档一点|高端一点"
    ),
}
_NUM = r"(\d+(?:,\d{3})*(?:\.\d+)?)(?![\d.]*[a-z%])"
_CUR = r"(?:[£$€¥￥]\s*)"
_SUF = r"(?:\s*(?:pounds?|quid|gbp|dollars?|usd|euros?|eur|rmb|yuan|元|块钱|块|￥))"
_AMOUNT = rf"{_CUR}?{_NUM}{_SUF}?"
_RANGE = re.compile(
    rf"(?:(between|from|价格在|在)\s*)?({_CUR})?{_NUM}({_SUF})?\s*(?:and|to|-|–|~|到|至)\s*({_CUR})?{_NUM}({_SUF})?"
)
_MAX_BEFORE = re.compile(
    r"(?:under|below|less than|cheaper than|lower than|up to|upto|at most|max(?:imum)?|no more than|"
    r"not more than|within|beneath|不超过|低于|少于|最多|不到|不高于|小于|不要超过)\s*" + _AMOUNT
)
_MAX_AFTER = re.compile(_AMOUNT + r"\s*(?:以内|以下|之内|内)")
_MIN_BEFORE = re.compile(
    r"(?<!不)(?<!not )(?<!no )(?:over|above|more than|at least|min(?:imum)?|from|starting at|higher than|pricier than|"
    r"超过|高于|至少|不低于|大于|多于)\s*" + _AMOUNT
)
_MIN_AFTER = re.compile(_AMOUNT + r"\s*(?:以上|起)")
_EN_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "last": -1,
}
_ZH_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_ORDINAL = re.compile(
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last)\b"
    r"|\b(\d{1,2})(?:st|nd|rd|th)\b"
    r"|(?:\bnumber|\bno\.|#|\bitem|\boption)\s*(\d{1,2})\b"
    r"|第\s*([一二两三四五六七八九十]|\d{1,2})"
    r"|(\d{1,2})\s*号"
    r"|(最后)"
)
_ATTRIBUTE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("colour", re.compile(r"colou?rs?\b|颜色|什么色")),
    ("brand", re.compile(r"\bbrand|\bmakes?\b|\bmaker\b|manufacturer|made by|who produces|牌子|品牌|生产|厂家|厂商|谁家")),
    ("category", re.compile(r"categor|\bsection\b|department|what kind of|类别|分类|哪一类|哪类|什么类")),
    ("stock", re.compile(r"\bstock\b|availab|buy (?:it |one )?now|order it|\bsold out\b|有货|库存|能买|买到|下单|现货|卖完")),
    ("price", re.compile(r"how much|price|\bcosts?\b|expensive|\bcheap\b|多少钱|价格|价钱|卖多少|多少元|贵不贵|贵吗")),
)
_SPLIT_EN = re.compile(r"\b(?:and|vs\.?|versus|or|with|against|to|than|from)\b|,")
_SPLIT_ZH = re.compile(r"和|跟|与|还是|对比|比较|比一比|比|或者|或|，|,")


@lru_cache(maxsize=1)
def lexicon() -> dict[str, Any]:
    """The bundled vocabulary (data/lexicon.json), read once."""
    path = files("coldbrew.assistant") / "data" / "lexicon.json"
    return json.loads(path.read_text(encoding="utf-8"))


def detect_language(text: str) -> str:
    """``"zh"`` when the message has any CJK character, else ``"en"``."""
    return "zh" if _CJK_RUN.search(text) else "en"


def singular(word: str) -> str:
    """A crude English singular ("candles" -> "candle", "boxes" -> "box", "knives" -> "knife")."""
    irregular = lexicon()["irregular_plurals"]
    if word in irregular:
        return irregular[word]
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def parse_price(text: str) -> tuple[float | None, float | None, str | None]:
    """Price constraints of a message: ``(min_price, max_price, relative_price)``.

    A number counts as a price only next to a price word ("under", "以内", ...) or a currency
    ("£20", "200元"); ``relative_price`` ("lower" / "higher") is set only when no number is.
    """
    low = text.lower()
    lo: float | None = None
    hi: float | None = None
    for m in _RANGE.finditer(low):
        prefix, cur1, a, suf1, cur2, b, suf2 = m.groups()
        if prefix or cur1 or cur2 or suf1 or suf2:
            x, y = _number(a), _number(b)
            lo, hi = min(x, y), max(x, y)
            low = low[: m.start()] + " " * (m.end() - m.start()) + low[m.end():]
            break
    if hi is None:
        m = _MAX_BEFORE.search(low) or _MAX_AFTER.search(low)
        if m:
            hi = _number(m.group(1))
    if lo is None:
        m = _MIN_BEFORE.search(low) or _MIN_AFTER.search(low)
        if m:
            lo = _number(m.group(1))
    relative = None
    if lo is None and hi is None:
        for name, pattern in _RELATIVE.items():
            if pattern.search(low):
                relative = name
                break
    return lo, hi, relative


@lru_cache(maxsize=1)
def _colour_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    out = []
    types = "|".join(lexicon()["colour_types"])
    for name, words in lexicon()["colours"].items():
        english = [w for w in words if w.isascii()]
        chinese = sorted((w for w in words if not w.isascii()), key=len, reverse=True)
        parts = []
        if english:
            parts.append(rf"\b(?:{'|'.join(english)})\b(?!\s+(?:{types})\b)")
        if chinese:
            parts.append(rf"(?:{'|'.join(chinese)})(?:色|的)")
        out.append((name, re.compile("|".join(parts))))
    return tuple(out)


def find_colour(text: str) -> str | None:
    """The canonical English name of the first colour mentioned, or ``None``."""
    low = text.lower()
    best: tuple[int, str] | None = None
    for name, pattern in _colour_patterns():
        m = pattern.search(low)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), name)
    return best[1] if best else None


def find_ordinals(text: str) -> tuple[int, ...]:
    """Positions referred to, 1-based, in order of mention; ``-1`` is "the last one"."""
    out = []
    for m in _ORDINAL.finditer(text.lower()):
        word, nth, numbered, zh, hao, last = m.groups()
        if word:
            out.append(_EN_ORDINALS[word])
        elif nth or numbered or hao:
            out.append(int(nth or numbered or hao))
        elif zh:
            out.append(int(zh) if zh.isdigit() else _ZH_DIGITS[zh])
        elif last:
            out.append(-1)
    return tuple(dict.fromkeys(o for o in out if o != 0))


def find_attribute(text: str) -> str:
    """Which product attribute a question asks about (``description`` when none is named)."""
    low = text.lower()
    for name, pattern in _ATTRIBUTE_RULES:
        if pattern.search(low):
            return name
    return "description"


def _segment_zh(text: str) -> list[tuple[str, str | None]]:
    """Greedy longest-match segmentation of Chinese runs: ``(chinese word, english or None)``."""
    table = lexicon()["zh_to_en"]
    longest = max(len(k) for k in table)
    out: list[tuple[str, str | None]] = []
    for run in _CJK_RUN.findall(text):
        i = 0
        while i < len(run):
            for n in range(min(longest, len(run) - i), 0, -1):
                piece = run[i : i + n]
                if piece in table:
                    out.append((piece, table[piece]))
                    i += n
                    break
            else:
                out.append((run[i], None))
                i += 1
    return out


def _english_terms(text: str) -> list[str]:
    """Singular English words of the text plus the English translations of its Chinese words."""
    low = text.lower()
    words = [singular(w) for w in _EN_WORD.findall(low)]
    for _, english in _segment_zh(low):
        if english:
            words.extend(singular(w) for w in english.split())
    return words


def _bigrams(text: str) -> list[str]:
    return [run[i : i + 2] for run in _CJK_RUN.findall(text) for i in range(len(run) - 1)]


def _match_tokens(text: str) -> set[str]:
    """Tokens used to match a title fragment: English terms (with translations) and CJK bigrams."""
    return {w for w in _english_terms(text) if w not in _STOP and len(w) > 1} | set(_bigrams(text))


@dataclass(frozen=True)
class Slots:
    """What one message says, beyond its intent. Unset slots are ``None`` or empty."""

    min_price: float | None = None
    max_price: float | None = None
    relative_price: str | None = None  # "lower" | "higher"
    colour: str | None = None
    category: str | None = None
    product: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    ordinals: tuple[int, ...] = ()
    items: tuple[str, ...] = ()
    attribute: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The set slots only, JSON-ready (tuples become lists)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass
class CatalogVocabulary:
    """What slot extraction needs to know about a catalog, computed once per catalog.

    ``item_tokens`` are the match tokens of each title; ``idf`` their inverse document
    frequencies; ``category_paths`` every category path and prefix ("Home", "Home > Kitchen").
    """

    item_ids: np.ndarray  # (n,) object
    titles: list[str]
    item_tokens: list[set[str]]
    idf: dict[str, float]
    category_paths: list[str]
    segment_paths: dict[str, list[str]]  # singular lower segment -> paths ending in it
    title_words: set[str]
    id_lookup: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> CatalogVocabulary:
        titles = [str(t) for t in catalog.titles]
        tokens = [_match_tokens(t) for t in titles]
        df = Counter(t for toks in tokens for t in toks)
        n = max(len(titles), 1)
        idf = {t: math.log(1 + n / c) for t, c in df.items()}
        paths: list[str] = []
        for raw in dict.fromkeys(str(c) for c in catalog.categories):
            for one in raw.split("|"):
                parts = [p.strip() for p in one.split(">") if p.strip()]
                for depth in range(1, len(parts) + 1):
                    path = " > ".join(parts[:depth])
                    if path not in paths:
                        paths.append(path)
        segment_paths: dict[str, list[str]] = {}
        for path in paths:
            key = " ".join(singular(w) for w in _EN_WORD.findall(path.split(" > ")[-1].lower()))
            if key:
                segment_paths.setdefault(key, []).append(path)
        title_words = {singular(w) for t in titles for w in _EN_WORD.findall(t.lower())} - _STOP
        ids = {str(i).lower(): str(i) for i in catalog.item_ids}
        return cls(np.asarray(catalog.item_ids, dtype=object), titles, tokens, idf, paths,
                   segment_paths, title_words, ids)

    def resolve_title(self, fragment: str) -> str | None:
        """The item whose title best matches a fragment (IDF-weighted token overlap), or ``None``."""
        query = _match_tokens(fragment)
        if not query:
            return None
        best, best_key = None, (0.0, 0.0)
        for i, toks in enumerate(self.item_tokens):
            common = query & toks
            if not common:
                continue
            score = sum(self.idf[t] for t in common)
            key = (score, len(common) / len(toks))
            if key > best_key:
                best, best_key = i, key
        return None if best is None else str(self.item_ids[best])


_REFERENCE_INTENTS = ("similar", "compare", "ask_attribute")
_FILTER_INTENTS = ("find_products", "recommend", "filter", "similar")


class SlotExtractor:
    """Extracts :class:`Slots` from messages against one catalog's vocabulary.

    Parameters
    ----------
    vocabulary: built with :meth:`CatalogVocabulary.from_catalog`.
    """

    def __init__(self, vocabulary: CatalogVocabulary) -> None:
        self.vocabulary = vocabulary

    def extract(self, text: str, intent: str) -> Slots:
        """Slots of one message; which slot types are read depends on the intent.

        find / recommend / filter: prices, colour, category, product, keywords; similar: those
        filters plus references; compare: references; ask_attribute: references + attribute;
        reset / greeting / other: nothing.
        """
        if not isinstance(text, str):
            raise TypeError(f"message must be a string, got {type(text).__name__}")
        values: dict[str, Any] = {}
        if intent in _FILTER_INTENTS:
            lo, hi, relative = parse_price(text)
            values.update(min_price=lo, max_price=hi, relative_price=relative, colour=find_colour(text))
            if intent != "similar":
                values.update(self._topic(text))
        if intent in _REFERENCE_INTENTS:
            values.update(self._references(text, intent))
            if intent == "ask_attribute":
                values["attribute"] = find_attribute(text)
        return Slots(**values)

    # ------------------------------------------------------------------ topic
    def _topic(self, text: str) -> dict[str, Any]:
        """Category, product nouns and other catalog words of a message."""
        vocab = self.vocabulary
        nouns = set(lexicon()["nouns"])
        colours = {w for words in lexicon()["colours"].values() for w in words if w.isascii()}
        terms = [t for t in _english_terms(text) if t not in _STOP and not t.isdigit()]
        matched: list[str] = []
        used: set[str] = set()
        phrase = " ".join(terms)
        for key in sorted(vocab.segment_paths, key=len, reverse=True):
            if re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", phrase):
                matched.append(key)
                used.update(key.split())
        category = self._category(matched, phrase)
        product, keywords = [], []
        for t in terms:
            if t in used or t in colours:
                continue
            if t in nouns:
                product.append(t)
            elif t in vocab.title_words and len(t) > 2:
                keywords.append(t)
        return {"category": category, "product": tuple(dict.fromkeys(product)),
                "keywords": tuple(dict.fromkeys(keywords))}

    def _category(self, matched: list[str], phrase: str) -> str | None:
        """The one category path the matched segment names point to."""
        if not matched:
            return None
        vocab = self.vocabulary
        segs = {
            path: {" ".join(singular(w) for w in _EN_WORD.findall(s.lower())) for s in path.split(" > ")}
            for path in vocab.category_paths
        }
        holding_all = [p for p in vocab.category_paths if set(matched) <= segs[p]]
        if holding_all:
            return min(holding_all, key=lambda p: (p.count(">"), vocab.category_paths.index(p)))
        # words from different branches: the one mentioned first, at its shallowest path
        first = min(matched, key=lambda k: phrase.find(k))
        return min(vocab.segment_paths[first], key=lambda p: p.count(">"))

    # ------------------------------------------------------------------ references
    def _references(self, text: str, intent: str) -> dict[str, Any]:
        low = text.lower()
        ordinals = find_ordinals(low)
        ids = tuple(dict.fromkeys(
            self.vocabulary.id_lookup[w] for w in re.findall(r"[\w\-]+", low) if w in self.vocabulary.id_lookup
        ))
        items: list[str] = list(ids)
        if not ordinals and not ids:
            cleaned = low
            if intent == "compare":
                splitter = _SPLIT_ZH if detect_language(low) == "zh" else _SPLIT_EN
                parts = [p for p in splitter.split(cleaned) if p.strip()]
            else:
                parts = [cleaned]
            for part in parts:
                found = self.vocabulary.resolve_title(part)
                if found is not None and found not in items:
                    items.append(found)
        return {"ordinals": ordinals, "items": tuple(items)}
