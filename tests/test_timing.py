"""The fit's stage timer: nested stages, a report of seconds, step lines on stderr."""

from __future__ import annotations

import time

import pytest

from coldbrew.timing import StageTimer, stage_of


def test_nested_stages_are_timed_under_their_parent_and_reported(capsys):
    timer = StageTimer(show=True)
    with timer.stage("tune"):
        with timer.stage("hold-out parts"):
            time.sleep(0.02)
        with timer.stage("hold-out parts"):  # a repeated stage accumulates
            time.sleep(0.01)
    report = timer.report()
    assert set(report) == {"tune", "tune/hold-out parts", "total"}
    assert report["tune/hold-out parts"] >= 0.03
    assert report["tune"] >= report["tune/hold-out parts"]
    assert report["total"] >= report["tune"]
    err = capsys.readouterr().err
    assert err.count("fit:") == 3 and "hold-out parts" in err and "tune" in err
    summary = timer.summary()
    assert "where the time went" in summary and "tune" in summary and "hold-out parts" not in summary


def test_a_stage_that_raises_is_still_timed_and_bad_names_are_refused():
    timer = StageTimer(show=False)
    with pytest.raises(RuntimeError), timer.stage("ranker"):
        raise RuntimeError("boom")
    assert "ranker" in timer.report()
    for bad in ("", "a/b"):
        with pytest.raises(ValueError, match="stage name"), timer.stage(bad):
            pass


def test_stage_of_is_a_no_op_outside_a_timed_fit():
    class Owner:
        pass

    owner = Owner()
    with stage_of(owner, "anything"):
        pass
    owner._timer = StageTimer(show=False)
    with stage_of(owner, "parts"):
        pass
    assert "parts" in owner._timer.report()
