"""Choosing and ordering promotions for a user's slots: pCTR x bid under caps and budgets."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from coldbrew.errors import DataError
from coldbrew.promotions.copywriting import Copywriter, ProductFacts, TemplateCopywriter
from coldbrew.promotions.ctr import CTRCalibrator, ctr_features
from coldbrew.promotions.ledger import ImpressionLedger, InMemoryLedger
from coldbrew.promotions.promotion import Promotion
from coldbrew.requests import Request

__all__ = ["Placement", "PromotionPlanner", "user_interests"]

DAY = 86_400
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_STOP = {"the", "and", "for", "with", "set", "pack", "of", "size", "small", "large", "mini",
         "new", "assorted", "design", "colour", "color", "vintage", "retro"}
_VERBS = {"purchase": "bought", "order": "bought", "rating": "rated", "like": "liked",
          "cart": "added it to your cart", "view": "viewed", "click": "viewed"}


@dataclass(frozen=True)
class Placement:
    """One promotion placed in one slot (slots numbered from 1, best first)."""

    slot: int
    promotion_id: str
    item_id: str
    title: str
    predicted_ctr: float
    bid: float
    score: float
    explanation: str
    copy: str
    copy_source: str = "template"

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "promotion_id": self.promotion_id, "item_id": self.item_id,
                "title": self.title, "predicted_ctr": round(self.predicted_ctr, 6), "bid": self.bid,
                "score": round(self.score, 6), "explanation": self.explanation, "copy": self.copy,
                "copy_source": self.copy_source}


def _category_levels(path: str) -> set[str]:
    return {part.strip().lower() for part in re.split(r"[>|/]", path) if part.strip()}


def user_interests(model, request: Request, n: int = 3) -> tuple[str, ...]:
    """Up to ``n`` short interest terms: the history's most common categories, else title words."""
    idx = model.item_map_.lookup([h.item_id for h in request.history])
    idx = idx[idx >= 0]
    if len(idx) == 0:
        if request.text and request.text.strip():
            return (" ".join(request.text.split())[:40],)
        return ()
    cats = Counter(str(model.catalog_.categories[i]).split(">")[-1].split("|")[0].strip() for i in idx)
    cats.pop("", None)
    if cats:
        return tuple(c for c, _ in cats.most_common(n))
    words = Counter(w.lower() for i in idx for w in set(_WORD.findall(str(model.catalog_.titles[i])))
                    if w.lower() not in _STOP)
    return tuple(w for w, _ in words.most_common(n))


class PromotionPlanner:
    """Fills a user's promotion slots.

    For each eligible promotion (running now, budget left, under the user's frequency cap)
    the calibrator turns the recommender's score and rank of the promoted item into a
    predicted click-through (for a category promotion: the user's best item of it); options
    are ranked by pCTR x bid and taken greedily, one slot per promotion and per item. Each
    placement is recorded in the ledger (one impression, charged pCTR x bid) unless
    ``record=False``.

    Parameters
    ----------
    model: a fitted ``coldbrew.pipeline.Recommender``.
    promotions: the campaigns to choose from.
    calibrator: score -> pCTR; default :meth:`CTRCalibrator.prior` (uncalibrated).
    ledger: impressions and spend; default a new :class:`InMemoryLedger`.
    copywriter: default :class:`TemplateCopywriter`.
    """

    def __init__(self, model, promotions: list[Promotion], calibrator: CTRCalibrator | None = None,
                 ledger: ImpressionLedger | None = None, copywriter: Copywriter | None = None,
                 currency: str = "£") -> None:
        model._check_fitted()
        self.model = model
        self.promotions = list(promotions)
        self.calibrator = calibrator or CTRCalibrator.prior(len(model.item_map_))
        self.ledger = ledger if ledger is not None else InMemoryLedger()
        self.copywriter = copywriter or TemplateCopywriter()
        self.currency = currency
        self.skipped_: dict[str, str] = {}

    def _items_of(self, promo: Promotion) -> np.ndarray:
        """Catalog indices a promotion may place (int64, possibly empty)."""
        if promo.item_id is not None:
            idx = self.model.item_map_.lookup([promo.item_id])
            return idx[idx >= 0]
        wanted = promo.category.strip().lower()
        cats = self.model.catalog_.categories
        return np.flatnonzero([wanted in _category_levels(str(c)) for c in cats]).astype(np.int64)

    def _eligible(self, promo: Promotion, user_id: str, now: int) -> str | None:
        """Why the promotion cannot be shown now (``None`` when it can)."""
        if not promo.active(now):
            return "outside its schedule"
        if self.ledger.spent(promo.promotion_id) >= promo.budget:
            return "budget spent"
        if promo.frequency_cap is not None:
            since = now - now % DAY if promo.cap_period == "day" else None
            if self.ledger.impressions(promo.promotion_id, user_id, since) >= promo.frequency_cap:
                return f"frequency cap of {promo.frequency_cap} per {promo.cap_period} reached"
        return None

    def select(self, request: Request, slots: int, now: int | None = None, language: str = "en",
               record: bool = True, with_copy: bool = True) -> list[Placement]:
        """Up to ``slots`` placements for the request's user, best first.

        ``now`` (unix seconds, default the clock) decides schedules and daily caps; products in
        ``request.exclude`` are never placed. Why each promotion was left out is in
        ``skipped_`` ({promotion_id: reason}). ``with_copy=False`` leaves ``copy`` empty (see
        :meth:`write_copy`).
        """
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise DataError(f"slots: expected an integer >= 1, got {slots!r}")
        if language not in ("en", "zh"):
            raise DataError(f"language: expected 'en' or 'zh', got {language!r}")
        now = int(time.time()) if now is None else int(now)
        self.skipped_ = {}
        excluded = self.model.item_map_.lookup(request.exclude) if request.exclude else np.zeros(0, np.int64)
        options: list[tuple[Promotion, np.ndarray]] = []
        for promo in self.promotions:
            reason = self._eligible(promo, request.user_id, now)
            items = self._items_of(promo) if reason is None else np.zeros(0, np.int64)
            if len(excluded):  # e.g. deleted or out-of-stock products
                items = items[~np.isin(items, excluded)]
            if reason is None and len(items) == 0:
                reason = "no product of it in the catalog"
            if reason is not None:
                self.skipped_[promo.promotion_id] = reason
                continue
            options.append((promo, items))
        if not options:
            return []
        every = np.unique(np.concatenate([items for _, items in options]))
        feats = ctr_features(self.model, [request], every[None, :])[0]
        pctr = dict(zip(every.tolist(), self.calibrator.predict(feats).tolist()))
        seen = dict(zip(every.tolist(), feats[:, 2].tolist()))
        ranked = sorted(
            ((pctr[i] * p.bid, pctr[i], p, i) for p, items in options for i in items.tolist()),
            key=lambda t: (-t[0], t[2].promotion_id, t[3]),
        )
        chosen: list[tuple[float, float, Promotion, int]] = []
        used_items: set[int] = set()
        used_promos: set[str] = set()
        for score, p, promo, item in ranked:
            if len(chosen) == slots:
                break
            if promo.promotion_id in used_promos or item in used_items:
                continue
            if self.ledger.spent(promo.promotion_id) + score > promo.budget:
                self.skipped_.setdefault(promo.promotion_id, "budget left is below the cost of an impression")
                continue
            chosen.append((score, p, promo, item))
            used_items.add(item)
            used_promos.add(promo.promotion_id)
        for promo, _ in options:
            if promo.promotion_id not in used_promos:
                self.skipped_.setdefault(promo.promotion_id, "outbid for the available slots")
        placements = self._placements(request, chosen, seen, now, record)
        return self.write_copy(placements, request, language) if with_copy else placements

    def _placements(self, request: Request, chosen: list[tuple[float, float, Promotion, int]],
                    seen: dict[int, float], now: int, record: bool) -> list[Placement]:
        model = self.model
        interests = user_interests(model, request)
        reasons = self._reasons(request, [item for *_, item in chosen if not seen[item]])
        last_event = {h.item_id: h.event for h in request.history}
        out = []
        for slot, (score, p, promo, item) in enumerate(chosen, start=1):
            item_id = model.item_map_.ids([item])[0]
            title = str(model.catalog_.titles[item]) or item_id
            category = str(model.catalog_.categories[item])
            text = f"{title} {category}".lower()
            matched = [w for w in interests if w.lower() in text]
            if seen[item]:
                why = f"you {_VERBS.get(last_event.get(item_id, ''), 'looked at')} it before"
            elif matched:
                why = f"matches your interest in {matched[0]}"
            else:
                why = reasons.get(item, "popular with shoppers like you")
            explanation = f"pCTR {p:.1%} × bid {self.currency}{promo.bid:.2f}; {why}"
            if not self.calibrator.calibrated:
                explanation += " (pCTR uncalibrated)"
            out.append(Placement(slot, promo.promotion_id, item_id, title, float(p), float(promo.bid),
                                 float(score), explanation, "", ""))
            if record:
                self.ledger.record(promo.promotion_id, request.user_id, now, float(score))
        return out

    def write_copy(self, placements: list[Placement], request: Request, language: str = "en") -> list[Placement]:
        """The placements with their promotion copy filled in (``copy`` and ``copy_source``).

        Separate from :meth:`select` so that a caller holding a lock around the caps and
        budgets can release it before a (possibly slow) generative backend is asked.
        """
        model = self.model
        interests = user_interests(model, request)
        discounts = {p.promotion_id: p.discount_percent for p in self.promotions}
        out = []
        for placement in placements:
            item = model.item_map_.index(placement.item_id)
            category = str(model.catalog_.categories[item])
            text = f"{placement.title} {category}".lower()
            # The copy names an interest only when this product matches it: no "because you
            # like running" on a wine promotion.
            matched = tuple(w for w in interests if w.lower() in text)
            price = float(model.catalog_.prices[item])
            facts = ProductFacts(placement.title, category, price if np.isfinite(price) else None,
                                 discounts.get(placement.promotion_id), matched, self.currency)
            copy, source = self.copywriter.write(facts, language, seed=f"{placement.promotion_id}:{request.user_id}")
            out.append(replace(placement, copy=copy, copy_source=source))
        return out

    def _reasons(self, request: Request, items: list[int]) -> dict[int, str]:
        """The recommender's own reason for each (unseen) item, from one restricted request."""
        if not items:
            return {}
        ids = self.model.item_map_.ids(items)
        req = Request(request.request_id, request.user_id, request.history, request.text, candidates=tuple(ids))
        rec = self.model.recommend([req], k=len(ids))[0]
        lookup = dict(zip(rec.items, rec.reasons))
        return {i: lookup[raw] for i, raw in zip(items, ids) if raw in lookup}
