"""Search tokens for English and Chinese text (and anything written with spaces).

Latin-script text is lower-cased, NFKC-normalised, split on non-word characters, stripped
of a few stop words and of plural endings. Chinese runs are segmented with ``jieba`` in its
search mode (which also yields the shorter words inside long ones, e.g. 乌龙茶 -> 乌龙,
乌龙茶), or, when jieba is not installed or ``chinese="bigram"``, split into overlapping
character bigrams. jieba ships its dictionary, so nothing is downloaded; it is initialised
on first use, once per process, with its logging silenced.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence

__all__ = ["Tokenizer", "CHINESE_MODES"]

#: Values accepted for ``Tokenizer(chinese=...)``.
CHINESE_MODES = ("auto", "jieba", "bigram")

# CJK unified ideographs (+ extension A) and the compatibility block.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+", re.UNICODE)
_IS_CJK = re.compile(rf"[{_CJK}]")
_STOP = frozenset(
    "a an and are as at be by for from in into is it of on or the to with without".split()
)

_jieba_lock = threading.Lock()
_jieba_module = None


def _jieba():
    """The jieba module, initialised once (its prefix dictionary is built from the bundled file)."""
    global _jieba_module
    if _jieba_module is None:
        with _jieba_lock:
            if _jieba_module is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)  # it logs "Building prefix dict..." at DEBUG
                jieba.initialize()
                _jieba_module = jieba
    return _jieba_module


def _jieba_available() -> bool:
    from importlib.util import find_spec

    return find_spec("jieba") is not None


def _stem(word: str) -> str:
    """A light English plural stripper: shoes -> shoe, boxes -> box, glasses -> glass."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


class Tokenizer:
    """Text -> search tokens, batch-first.

    Parameters
    ----------
    chinese: ``"auto"`` (jieba when installed, else character bigrams), ``"jieba"`` (an
        error names the ``search`` extra when it is missing) or ``"bigram"``.
    """

    def __init__(self, chinese: str = "auto") -> None:
        if chinese not in CHINESE_MODES:
            raise ValueError(f"chinese: expected one of {', '.join(CHINESE_MODES)}, got {chinese!r}")
        if chinese == "jieba" and not _jieba_available():
            raise ImportError(
                "Chinese word segmentation needs jieba: pip install 'coldbrew[search]'"
            )
        if chinese == "auto":
            chinese = "jieba" if _jieba_available() else "bigram"
        self.chinese = chinese

    def __repr__(self) -> str:
        return f"Tokenizer(chinese={self.chinese!r})"

    def terms(self, text: str) -> list[tuple[str, list[str]]]:
        """The words of one text, each with its tokens: ``[(surface word, tokens), ...]``.

        Latin words keep their lower-cased surface form (``"shoes"`` -> ``["shoe"]``); each
        Chinese word is its own surface; stop words are dropped.
        """
        text = unicodedata.normalize("NFKC", str(text)).lower()
        out: list[tuple[str, list[str]]] = []
        for run in _RUN.findall(text):
            if _IS_CJK.match(run):
                if self.chinese == "jieba":
                    words = [w for w in _jieba().lcut_for_search(run) if w.strip()]
                else:
                    words = _bigrams(run)
                out.extend((w, [w]) for w in words)
            elif run not in _STOP:
                out.append((run, [_stem(run)]))
        return out

    def tokenize(self, text: str) -> list[str]:
        """Tokens of one text, in order (repeats kept: BM25 counts them)."""
        return [token for _, tokens in self.terms(text) for token in tokens]

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        """Tokens of each text: a list of ``len(texts)`` token lists."""
        if isinstance(texts, str):
            raise TypeError("texts: expected a list of strings; a single text is a batch of one: [text]")
        return [self.tokenize(t) for t in texts]
