"""The slot planner: ordering by pCTR x bid, caps, budgets, schedules, one slot per item."""

from __future__ import annotations

import numpy as np
import pytest

from coldbrew.errors import DataError
from coldbrew.promotions import (
    CTRCalibrator,
    InMemoryLedger,
    Promotion,
    PromotionPlanner,
    ctr_features,
    user_interests,
)

from .builders import START, runner

NOW = START + 200_000
DAY = 86_400


def _planner(model, promos, **kw) -> PromotionPlanner:
    return PromotionPlanner(model, promos, **kw)


def test_placements_are_ordered_by_pctr_times_bid(model) -> None:
    promos = [Promotion(f"p{i}", bid, 100.0, item_id=item)
              for i, (item, bid) in enumerate([("s3", 0.2), ("t2", 0.9), ("w1", 0.5), ("s2", 0.3)])]
    placements = _planner(model, promos).select(runner(), 4, now=NOW)
    assert [p.slot for p in placements] == [1, 2, 3, 4]
    scores = [p.score for p in placements]
    assert scores == sorted(scores, reverse=True)
    for p in placements:
        assert p.score == pytest.approx(p.predicted_ctr * p.bid, rel=1e-5)
        assert 0.0 < p.predicted_ctr < 1.0
    # The runner's own product beats an unrelated one at the same bid...
    same_bid = [Promotion("run", 0.5, 100.0, item_id="s3"), Promotion("tea", 0.5, 100.0, item_id="t2")]
    assert [p.item_id for p in _planner(model, same_bid).select(runner(), 2, now=NOW)] == ["s3", "t2"]
    # ...until the unrelated one bids enough more.
    pctr = {p.item_id: p.predicted_ctr for p in _planner(model, same_bid).select(runner(), 2, now=NOW)}
    high = pctr["s3"] / pctr["t2"] * 0.5 * 1.5
    outbid = [Promotion("run", 0.5, 100.0, item_id="s3"), Promotion("tea", high, 100.0, item_id="t2")]
    assert [p.item_id for p in _planner(model, outbid).select(runner(), 2, now=NOW)] == ["t2", "s3"]


def test_slots_limit_and_one_slot_per_item(model) -> None:
    promos = [Promotion("a", 1.0, 100.0, item_id="s3"), Promotion("b", 0.9, 100.0, item_id="s3"),
              Promotion("c", 0.1, 100.0, item_id="t1")]
    planner = _planner(model, promos)
    placements = planner.select(runner(), 3, now=NOW)
    assert [p.promotion_id for p in placements] == ["a", "c"]
    assert planner.skipped_["b"] == "outbid for the available slots"
    assert len(_planner(model, promos).select(runner(), 1, now=NOW)) == 1
    with pytest.raises(DataError, match="slots"):
        planner.select(runner(), 0, now=NOW)
    with pytest.raises(DataError, match="language"):
        planner.select(runner(), 1, now=NOW, language="fr")


def test_daily_and_total_frequency_caps(model) -> None:
    daily = Promotion("d", 1.0, 1e6, item_id="s3", frequency_cap=2, cap_period="day")
    total = Promotion("t", 0.5, 1e6, item_id="s2", frequency_cap=1, cap_period="total")
    planner = _planner(model, [daily, total])
    day0 = NOW - NOW % DAY + 3600
    assert {p.promotion_id for p in planner.select(runner(), 2, now=day0)} == {"d", "t"}
    assert [p.promotion_id for p in planner.select(runner(), 2, now=day0 + 60)] == ["d"]
    assert planner.skipped_["t"].startswith("frequency cap of 1 per total")
    assert planner.select(runner(), 2, now=day0 + 120) == []
    assert planner.skipped_["d"] == "frequency cap of 2 per day reached"
    # Another user is not capped; the next day the daily cap resets, the total one does not.
    assert {p.promotion_id for p in planner.select(runner("u3"), 2, now=day0 + 180)} == {"d", "t"}
    assert [p.promotion_id for p in planner.select(runner(), 2, now=day0 + DAY)] == ["d"]
    assert planner.ledger.impressions("d", "u0") == 3
    assert planner.ledger.impressions("d", "u0", since=day0 - 3600 + DAY) == 1


def test_budget_is_charged_the_expected_cost_and_enforced(model) -> None:
    probe = _planner(model, [Promotion("b", 1.0, 1e6, item_id="s3")]).select(runner(), 1, now=NOW, record=False)[0]
    cost = probe.score
    planner = _planner(model, [Promotion("b", 1.0, cost * 2.5, item_id="s3")])
    for _ in range(2):
        assert len(planner.select(runner(), 1, now=NOW)) == 1
    assert planner.ledger.spent("b") == pytest.approx(2 * cost)
    assert planner.select(runner(), 1, now=NOW) == []  # half an impression left: not enough
    assert planner.skipped_["b"] == "budget left is below the cost of an impression"
    planner.ledger.record("b", "x", NOW, cost)
    assert planner.select(runner(), 1, now=NOW) == []
    assert planner.skipped_["b"] == "budget spent"


def test_record_false_leaves_the_ledger_alone(model) -> None:
    planner = _planner(model, [Promotion("b", 1.0, 10.0, item_id="s3", frequency_cap=1)])
    for _ in range(3):
        assert len(planner.select(runner(), 1, now=NOW, record=False)) == 1
    assert planner.ledger.spent("b") == 0.0


def test_schedule(model) -> None:
    promos = [Promotion("early", 1.0, 10.0, item_id="s3", start=NOW + 10),
              Promotion("late", 1.0, 10.0, item_id="s2", end=NOW),
              Promotion("now", 1.0, 10.0, item_id="t1", start=NOW, end=NOW + 1)]
    planner = _planner(model, promos)
    assert [p.promotion_id for p in planner.select(runner(), 3, now=NOW)] == ["now"]
    assert planner.skipped_ == {"early": "outside its schedule", "late": "outside its schedule"}


def test_category_promotion_places_the_users_best_item_of_it(model) -> None:
    promos = [Promotion("cat", 1.0, 10.0, category="running"), Promotion("none", 1.0, 10.0, category="Toys"),
              Promotion("ghost", 1.0, 10.0, item_id="not-in-catalog")]
    planner = _planner(model, promos)
    placements = planner.select(runner(), 3, now=NOW)
    assert [p.promotion_id for p in placements] == ["cat"]
    assert placements[0].item_id in {"s1", "s2", "s3"}
    assert planner.skipped_["none"] == planner.skipped_["ghost"] == "no product of it in the catalog"


def test_explanations_and_bilingual_copy(model) -> None:
    promos = [Promotion("p", 0.4, 10.0, item_id="s3", discount_percent=20),
              Promotion("q", 0.4, 10.0, item_id="s1")]
    calibrator = CTRCalibrator((1.0, -3.0, 0.5), -4.0)
    en = _planner(model, promos, calibrator=calibrator).select(runner(), 2, now=NOW)
    by_id = {p.promotion_id: p for p in en}
    assert by_id["p"].explanation.startswith(f"pCTR {by_id['p'].predicted_ctr:.1%} × bid £0.40; ")
    assert "matches your interest in Running" in by_id["p"].explanation
    assert "you bought it before" in by_id["q"].explanation
    assert "uncalibrated" not in by_id["p"].explanation
    assert "running socks" in by_id["p"].copy.lower() and "20% off" in by_id["p"].copy and "£4.00" in by_id["p"].copy
    zh = _planner(model, promos, calibrator=calibrator).select(runner(), 2, now=NOW, language="zh")
    zh_copy = {p.promotion_id: p.copy for p in zh}["p"]
    assert "8折" in zh_copy and "£4.00" in zh_copy
    prior = _planner(model, promos).select(runner(), 1, now=NOW)
    assert prior[0].explanation.endswith("(pCTR uncalibrated)")


def test_ctr_features_and_interests(model) -> None:
    idx = model.item_map_.lookup(["s1", "s3", "t2"])
    feats = ctr_features(model, [runner()], idx[None, :])
    assert feats.shape == (1, 3, 3) and feats.dtype == np.float32
    assert feats[0, :, 2].tolist() == [1.0, 0.0, 0.0]  # s1 is in the history
    assert feats[0, 1, 0] > feats[0, 2, 0] and feats[0, 1, 1] < feats[0, 2, 1]  # socks above tea
    assert np.all((feats[0, :, 1] >= 0) & (feats[0, :, 1] <= 1))
    assert user_interests(model, runner()) == ("Running",)


def test_ledger_round_trip(tmp_path) -> None:
    ledger = InMemoryLedger()
    ledger.record("p", "u", 100, 0.25)
    ledger.record("p", "u", 200, 0.25)
    ledger.save(tmp_path / "ledger.json")
    again = InMemoryLedger.load(tmp_path / "ledger.json")
    assert again.impressions("p", "u") == 2 and again.impressions("p", "u", since=150) == 1
    assert again.spent("p") == 0.5 and again.spent("other") == 0.0
    assert InMemoryLedger.load(tmp_path / "missing.json").spent("p") == 0.0
    (tmp_path / "bad.json").write_text('{"impressions": [{"user_id": "u"}]}')
    with pytest.raises(DataError, match=r"impressions\[0\]"):
        InMemoryLedger.load(tmp_path / "bad.json")


def test_excluded_products_are_never_placed(model) -> None:
    from coldbrew.requests import Request

    base = runner()
    request = Request(base.request_id, base.user_id, base.history, exclude=("s3", "s2"))
    promos = [Promotion("item", 1.0, 10.0, item_id="s3"), Promotion("cat", 1.0, 10.0, category="Running")]
    planner = _planner(model, promos)
    placements = planner.select(request, 2, now=NOW)
    assert [(p.promotion_id, p.item_id) for p in placements] == [("cat", "s1")]
    assert planner.skipped_["item"] == "no product of it in the catalog"


def test_copy_can_be_written_after_selection(model) -> None:
    promos = [Promotion("p", 0.4, 10.0, item_id="s3", discount_percent=20)]
    bare = _planner(model, promos).select(runner(), 1, now=NOW, with_copy=False)
    assert bare[0].copy == "" and bare[0].copy_source == ""
    planner = _planner(model, promos)
    filled = planner.write_copy(bare, runner(), "zh")
    assert "8折" in filled[0].copy and filled[0].copy_source == "template"
    assert filled[0].score == bare[0].score and filled[0].explanation == bare[0].explanation


def test_sqlite_ledger_is_durable_and_enforces_caps(model, tmp_path) -> None:
    from coldbrew.promotions import SQLiteLedger

    ledger = SQLiteLedger(tmp_path / "ledger.db")
    promo = Promotion("d", 1.0, 1e6, item_id="s3", frequency_cap=1)
    assert len(_planner(model, [promo], ledger=ledger).select(runner(), 1, now=NOW)) == 1
    ledger.close()
    reopened = SQLiteLedger(tmp_path / "ledger.db")
    assert reopened.impressions("d", "u0") == 1 and reopened.impressions("d", "u0", since=NOW + 1) == 0
    assert reopened.spent("d") > 0 and reopened.spent("other") == 0.0
    planner = _planner(model, [promo], ledger=reopened)
    assert planner.select(runner(), 1, now=NOW + 60) == []
    assert planner.skipped_["d"] == "frequency cap of 1 per day reached"
    assert len(planner.select(runner(), 1, now=NOW + DAY)) == 1
