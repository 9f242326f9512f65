"""The walltime gate's rules (no Ray): when a trial waits for the next allocation."""

from __future__ import annotations

import pytest

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning.walltime import HOLD_GRACE_S, STOP_AT_ENV, WalltimeState, stop_at_from_env


def test_stop_time_from_the_environment() -> None:
    assert stop_at_from_env({}) is None
    assert stop_at_from_env({STOP_AT_ENV: " "}) is None
    assert stop_at_from_env({STOP_AT_ENV: "1796632200"}) == 1796632200.0


@pytest.mark.parametrize("raw", ["tomorrow", "nan", "inf", "-5", "0"])
def test_a_stop_time_that_is_not_a_time_is_bad_input(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{STOP_AT_ENV}=.*Unix time"):
        stop_at_from_env({STOP_AT_ENV: raw})


def test_no_deadline_or_no_estimate_never_holds() -> None:
    assert WalltimeState(None, [10.0]).hold_reason(now=0) is None
    assert WalltimeState(100.0, []).hold_reason(now=99) is None  # the first trial starts


def test_a_trial_waits_when_its_first_report_would_come_after_the_signal() -> None:
    state = WalltimeState(stop_at=100.0, first_report_s=[8.0, 30.0, 10.0])  # median 10
    assert state.expected_first_report_s() == 10.0
    assert state.hold_reason(now=90.0) is None  # reports at 100: just in time
    reason = state.hold_reason(now=91.0)
    assert reason is not None and "expected 10 s" in reason and "due in 9 s" in reason
    assert "--resume" in reason
    assert state.hold_s(now=91.0) == pytest.approx(9.0 + HOLD_GRACE_S)


def test_no_signal_long_after_it_was_due_starts_the_trial() -> None:
    state = WalltimeState(stop_at=100.0, first_report_s=[10.0])
    assert "overdue" in (state.hold_reason(now=100.0 + HOLD_GRACE_S) or "")
    assert state.hold_reason(now=100.0 + HOLD_GRACE_S + 1) is None
    assert state.hold_s(now=100.0 + HOLD_GRACE_S + 1) == 0.0


def test_state_round_trip_keeps_the_newest_times(tmp_path) -> None:
    state = WalltimeState(stop_at=123.5)
    for seconds in range(30):
        state.add(float(seconds))
    path = str(tmp_path / "walltime.json")
    state.save(path)
    loaded = WalltimeState.load(path)
    assert loaded.stop_at == 123.5
    assert loaded.first_report_s == [float(s) for s in range(10, 30)]


@pytest.mark.parametrize("text", ["", "{", "[]", '{"first_report_s": ["x"]}'])
def test_a_missing_or_broken_state_holds_nothing(tmp_path, text: str) -> None:
    path = tmp_path / "walltime.json"
    assert WalltimeState.load(str(path)) == WalltimeState()
    path.write_text(text)
    assert WalltimeState.load(str(path)) == WalltimeState()
