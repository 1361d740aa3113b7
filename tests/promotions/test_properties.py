"""Planner invariants for random campaigns (hypothesis): slots, uniqueness, order, budgets."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldbrew.promotions import Promotion, PromotionPlanner

from .builders import ITEMS, START, runner

targets = st.one_of(st.sampled_from([i for i, *_ in ITEMS]).map(lambda i: {"item_id": i}),
                    st.sampled_from(["Running", "Tea", "Wine", "Food"]).map(lambda c: {"category": c}))
campaign = st.tuples(targets, st.floats(0.01, 5.0), st.floats(0.001, 1.0), st.sampled_from([None, 1, 2]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(campaign, min_size=1, max_size=8), st.integers(1, 5), st.integers(1, 3))
def test_placements_respect_slots_uniqueness_order_and_budgets(model, campaigns, slots, rounds) -> None:
    promos = [Promotion(f"p{n}", bid, budget, frequency_cap=cap, **target)
              for n, (target, bid, budget, cap) in enumerate(campaigns)]
    planner = PromotionPlanner(model, promos)
    shown: dict[str, int] = {}
    for r in range(rounds):
        placements = planner.select(runner(), slots, now=START + 200_000 + r)
        assert len(placements) <= slots
        assert len({p.item_id for p in placements}) == len(placements)
        assert len({p.promotion_id for p in placements}) == len(placements)
        assert [p.score for p in placements] == sorted((p.score for p in placements), reverse=True)
        for p in placements:
            shown[p.promotion_id] = shown.get(p.promotion_id, 0) + 1
    for promo in promos:
        assert planner.ledger.spent(promo.promotion_id) <= promo.budget + 1e-9
        if promo.frequency_cap is not None:
            assert shown.get(promo.promotion_id, 0) <= promo.frequency_cap
    assert sum(shown.values()) == pytest.approx(sum(planner.ledger.impressions(p.promotion_id, "u0") for p in promos))
