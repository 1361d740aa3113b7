"""The recommender's answers are pinned: a change of structure must not change them.

``tests/fixtures/golden_answers.json`` was written by this file's ``_answers`` on the code before
the Recommender was split into composed parts (issue #20); regenerate it only for a change
meant to alter answers: ``python -m tests.test_answers_golden``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.ranking.test_stage import DAY, START, _shop

from coldbrew.config import FitConfig
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request

GOLDEN = Path(__file__).parent / "fixtures" / "golden_answers.json"


def _config(dense_limit: int) -> FitConfig:
    return FitConfig.from_dict({
        "encoder": {"name": "hashing"},
        "ranker": {"kind": "multitask", "require_gain": False, "candidates": 12, "epochs": 5, "max_users": 200},
        "retrieval": {"dense_limit": dense_limit, "per_source": 10},
        "compute": {"workers": 1},
    })


def _requests() -> list[Request]:
    def h(item: str, day: float, event: str = "purchase") -> HistoryEvent:
        return HistoryEvent(item, START + int(day * DAY), event)

    return [
        Request("warm", "u0", (h("shoes0", 50), h("shoes1", 60), h("tea3", 61, "view"))),
        Request("known", "u5", (h("wine2", 90),)),
        Request("new-one", "stranger", (h("tea2", 101),)),
        Request("new-three", "s2", (h("tea2", 101), h("tea4", 101.5, "view"), h("wine1", 102))),
        Request("text", "x", text="premium wine"),
        Request("text-and-history", "y", (h("shoes3", 99),), text="tea"),
        Request("empty", "z"),
        Request("shelf", "u3", (h("shoes2", 70),), candidates=("shoes8", "shoes9", "tea9")),
        Request("candidates", "u4", (h("tea1", 80),), candidates=("tea0", "tea1", "wine0", "shoes5"),
                exclude=("tea0",)),
        Request("excluded", "u6", (h("wine4", 95),), exclude=("wine5", "wine6")),
    ]


def _answers() -> dict:
    catalog, events = _shop()
    out: dict = {}
    for name, limit in (("dense", 50_000), ("retrieved", 0)):
        model = Recommender(_config(limit)).fit(catalog, events, progress=False)
        recs = model.recommend(_requests(), k=8)
        out[name] = {
            "recommend": [[r.request_id, r.items, [round(s, 4) for s in r.scores], r.reasons] for r in recs],
            "similar": model.similar("tea1", k=5).items,
            "onboard": model.onboard("basic shoes", k=5).items,
        }
        if name == "dense":
            items = np.array([[0, 1, 2, 10, 29], [5, 6, 7, -1, -1]], dtype=np.int64)
            out[name]["score_items"] = np.round(model.score_items(_requests()[:2], items), 4).tolist()
    return out


def test_answers_are_those_of_the_code_before_the_split():
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing: run python -m tests.test_answers_golden")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    now = _answers()
    for path in ("dense", "retrieved"):
        for (rid, items, scores, reasons), (grid, gitems, gscores, greasons) in zip(
                now[path]["recommend"], golden[path]["recommend"], strict=True):
            assert (rid, items, reasons) == (grid, gitems, greasons), (path, rid)
            np.testing.assert_allclose(scores, gscores, atol=2e-4, err_msg=f"{path} {rid}")
        assert now[path]["similar"] == golden[path]["similar"]
        assert now[path]["onboard"] == golden[path]["onboard"]
    got = np.array(now["dense"]["score_items"], dtype=float)
    np.testing.assert_allclose(got, np.array(golden["dense"]["score_items"], dtype=float), atol=2e-4)


if __name__ == "__main__":
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(_answers(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
