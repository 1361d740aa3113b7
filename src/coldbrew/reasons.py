"""One human reason per recommended item: its strongest source, made concrete.

"often bought with X, which you bought", "matches 'oolong' in your interests", "new in Tea":
written from the blend's per-source parts of each shown item and the request's history,
reading only a fitted model's public arrays (its catalog, item map, co-occurrence, CF and
text vectors, and which items have interactions).
"""

from __future__ import annotations

import re

import numpy as np

from coldbrew.requests import Request
from coldbrew.scoring import SOURCES, Batch

__all__ = ["reasons", "title"]

_VERBS = {
    "purchase": "bought", "order": "bought", "cart": "added to your cart",
    "add_to_cart": "added to your cart", "rating": "rated", "like": "liked",
    "wishlist": "wished for", "view": "viewed", "click": "viewed",
}


def title(model, i: int) -> str:
    """Item ``i``'s title (its ID when untitled), at most 60 characters."""
    text = str(model.catalog_.titles[i]) or str(model.item_map_.ids([i])[0])
    return text if len(text) <= 60 else text[:57] + "..."


def reasons(model, req: Request, batch: Batch, r: int, items: np.ndarray, parts: np.ndarray, mode: str = "user") -> list[str]:
    """One human reason per recommended item: its strongest source, made concrete.

    ``items`` (k,) item indices; ``parts`` (len(SOURCES), k) their weighted source scores.
    The anchor ("because you bought X") is the history item closest to each recommended
    item under that source; all anchors of a request come from one small matrix.
    """
    lo, hi = batch.strengths.indptr[r], batch.strengths.indptr[r + 1]
    hist = batch.strengths.indices[lo:hi]
    items = np.asarray(items, dtype=np.int64)
    # A source with no weight for an item (co-occurrence for a new product) is never its reason.
    sources = [SOURCES[int(s)] for s in np.argmax(np.where(parts != 0, parts, -np.inf), axis=0)] if len(items) else []
    anchors: dict[str, np.ndarray] = {}
    if len(hist):
        needed = set(sources)
        if "cooccurrence" in needed:
            anchors["cooccurrence"] = hist[np.argmax(model.cooccurrence_[hist][:, items].toarray(), axis=0)]
        if "cf" in needed:
            anchors["cf"] = hist[np.argmax(model.item_factors_[hist] @ model.item_factors_[items].T, axis=0)]
        if "content" in needed:
            anchors["content"] = hist[np.argmax(model.text_vectors_[hist] @ model.text_vectors_[items].T, axis=0)]
    last_event: dict[str, str] | None = None  # built only when a reason names a history item
    new_items = (~model.item_warm_[items]).tolist()
    content_first = (parts[0] > 0).tolist() if len(items) else []
    anchored = {name: a.tolist() for name, a in anchors.items()}
    has_text = bool(batch.has_text[r])
    categories = model.catalog_.categories
    out = []
    for n, (i, source) in enumerate(zip(items.tolist(), sources)):
        new_item = new_items[n]
        if source == "content" and has_text and (len(hist) == 0 or content_first[n]):
            words = _matching_words(req.text or "", title(model, i))
            if words:
                out.append(f"matches '{words}' in your interests")
            else:
                out.append(f"matches your interests ('{_clip(req.text or '', 40)}')")
            continue
        if source in anchored:
            j = anchored[source][n]
            if mode == "similar":
                out.append({
                    "cooccurrence": "often bought together",
                    "cf": "new arrival for the same shoppers" if new_item else "liked by the same shoppers",
                    "content": "similar product description",
                }[source])
                continue
            if last_event is None:
                last_event = {h.item_id: h.event for h in req.history}
            verb = _VERBS.get(last_event.get(model.item_map_.ids([j])[0], ""), "looked at")
            if source == "cooccurrence":
                out.append(f"often bought with {title(model, j)}, which you {verb}")
            elif new_item:
                out.append(f"new arrival like {title(model, j)}, which you {verb}")
            elif source == "content":
                out.append(f"similar to {title(model, j)}, which you {verb}")
            else:
                out.append(f"because you {verb} {title(model, j)}")
            continue
        category = str(categories[i]).split(">")[-1].split("|")[0].strip()
        if new_item:
            out.append(f"new in {category}" if category else "new arrival")
        elif category:
            out.append(f"popular in {category} right now")
        else:
            out.append("popular with shoppers right now")
    return out


_WORD = re.compile(r"[\w']+", re.UNICODE)


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def _matching_words(text: str, title: str) -> str:
    """Words (or, for Chinese, two-character terms) shared by the user's text and a title."""
    title_l = title.lower()
    hits = []
    for word in _WORD.findall(text.lower()):
        if any(_is_cjk(ch) for ch in word):
            j = 0
            while j < len(word) - 1:  # longest shared run of two or more characters
                run = next((word[j:e] for e in range(len(word), j + 1, -1) if word[j:e] in title_l), "")
                if run:
                    hits.append(run)
                j += max(len(run), 1)
        elif len(word) > 2 and word in title_l:
            hits.append(word)
    return " ".join(dict.fromkeys(hits))[:40]


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
