"""``run_config.fail_fast: auto | true | false`` (issue 15, point 7).

The Ray-free rule (:mod:`itwinai_ray.tuning.fail_fast`), the error signature and the
settings. On a real local Ray: tests/e2e/test_fail_fast_e2e.py.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import pytest

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning.fail_fast import (
    FirstTrialsFailAlike,
    StopDecision,
    TrialEnd,
    error_signature,
    parse_mode,
)
from itwinai_ray.tuning.settings import RunSettings

BUG = "AttributeError: 'NoneType' object has no attribute 'forward'"


def _failed(trial_id: str, error: str | None = BUG, reported: bool = False) -> TrialEnd:
    return TrialEnd(trial_id, errored=True, reported=reported, error=error,
                    log_path=f"/r/{trial_id}/error.txt")


def _ok(trial_id: str) -> TrialEnd:
    return TrialEnd(trial_id, errored=False, reported=True)


# ------------------------------------------------------------------------------ the rule
def test_two_early_failures_alike_stop_once_with_the_first_trials_log() -> None:
    rule = FirstTrialsFailAlike()
    assert rule.trial_ended(_failed("a")) is None and rule.decision is None
    decision = rule.trial_ended(_failed("b"))
    assert decision == StopDecision(BUG, "/r/a/error.txt", ("a", "b"))
    assert rule.decision is decision and rule.settled
    assert rule.trial_ended(_failed("c")) is None  # decided once: logged once
    message = decision.message()
    assert message.count(BUG) == 1 and "/r/a/error.txt" in message
    assert "run_config.fail_fast: false" in message and message.startswith("Stopped")


@pytest.mark.parametrize("second", [
    _failed("b", error="AttributeError: 'NoneType' object has no attribute 'backward'"),
    _failed("b", error="ValueError: 'NoneType' object has no attribute 'forward'"),
    _failed("b", reported=True),  # failed after reporting: the code path worked once
    _failed("b", error=None),  # a lost process, or an error that could not be read
    _ok("b"),
], ids=["other message", "other type", "after reporting", "unknown", "finished"])
def test_a_second_end_that_differs_settles_the_rule_for_good(second: TrialEnd) -> None:
    rule = FirstTrialsFailAlike()
    rule.trial_ended(_failed("a"))
    assert rule.trial_ended(second) is None and rule.settled
    # later pairs of identical early failures never count: only the first 2 ends do
    for trial_id in "cdef":
        assert rule.trial_ended(_failed(trial_id)) is None
    assert rule.decision is None


@pytest.mark.parametrize("first", [_ok("a"), _failed("a", reported=True),
                                   _failed("a", error=None)])
def test_a_first_end_that_is_no_early_failure_settles_at_once(first: TrialEnd) -> None:
    rule = FirstTrialsFailAlike()
    assert rule.trial_ended(first) is None and rule.settled
    assert rule.trial_ended(_failed("b")) is None and rule.trial_ended(_failed("c")) is None


def test_the_same_trial_ending_twice_counts_once() -> None:
    rule = FirstTrialsFailAlike()
    rule.trial_ended(_failed("a"))
    assert rule.trial_ended(_failed("a")) is None and not rule.settled
    assert rule.trial_ended(_failed("b")) is not None


def test_the_rule_pickles_with_its_state() -> None:
    """Tune cloudpickles the run config (callbacks, stopper) into tuner.pkl."""
    rule = FirstTrialsFailAlike()
    rule.trial_ended(_failed("a"))
    copy = pickle.loads(pickle.dumps(rule))
    assert copy.trial_ended(_failed("b")) is not None
    with pytest.raises(ValueError, match="window is 1"):
        FirstTrialsFailAlike(window=1)


# ------------------------------------------------------------------- error signatures
class _TaskError(Exception):
    """Shaped like Ray's RayTaskError: a message naming the process, the user's ``cause``."""

    def __init__(self, cause: BaseException, pid: int) -> None:
        super().__init__(f"ray::ImplicitFunc.train() (pid={pid}) {cause!r}")
        self.cause, self.pid = cause, pid

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.cause, self.pid)


class _WorkerGroupError(Exception):
    def __init__(self, worker_failures: dict[int, BaseException]) -> None:
        super().__init__(f"Training failed due to worker errors: {worker_failures}")
        self.worker_failures = worker_failures


class RayActorError(Exception):
    """Same class name as Ray's: a lost process is not a bug."""


def test_error_signature_unwraps_ray_and_train_wrappers() -> None:
    bug = AttributeError("'NoneType' object has no attribute 'forward'")
    assert error_signature(bug) == BUG
    assert error_signature(_TaskError(bug, pid=1)) == error_signature(_TaskError(bug, pid=2))
    group = _WorkerGroupError({1: RuntimeError("gloo: peer closed"), 0: bug})
    assert error_signature(_TaskError(group, pid=3)) == BUG  # the lowest rank's error
    controller = Exception("controller")
    controller.controller_failure = KeyError("x")  # type: ignore[attr-defined]
    assert error_signature(controller) == "KeyError: 'x'"
    a = TypeError("bad <Net object at 0x7f00aa> and\n  more")
    b = TypeError("bad <Net object at 0x7f11bb> and more")
    assert error_signature(a) == error_signature(b) == (
        "TypeError: bad <Net object at 0x…> and more")
    assert error_signature(None) is None
    assert error_signature(_TaskError(RayActorError("actor died, pid=7"), pid=4)) is None


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize("value, expected", [
    ("auto", "auto"), ("AUTO", "auto"), (True, True), (False, False), ("true", True),
    ("False", False), (None, "auto"),
])
def test_fail_fast_setting_values(value: Any, expected: Any) -> None:
    assert RunSettings.from_any({"fail_fast": value}).fail_fast == expected


def test_fail_fast_defaults_to_auto_and_combines_with_retries() -> None:
    assert RunSettings().fail_fast == "auto" and RunSettings.from_any({}).fail_fast == "auto"
    run = RunSettings.from_any({"fail_fast": "auto", "max_failures": 2})
    assert (run.fail_fast, run.max_failures) == ("auto", 2)
    with pytest.raises(ConfigurationError, match=r"fail_fast: true .* max_failures=2"):
        RunSettings.from_any({"fail_fast": True, "max_failures": 2})


@pytest.mark.parametrize("value", ["sometimes", 1, 0, 1.0, [True], "", {"auto": 1}])
def test_bad_fail_fast_values_name_the_choices(value: Any) -> None:
    with pytest.raises(ConfigurationError,
                       match=r"run_config.fail_fast is .*, but must be true or false .* or auto"):
        RunSettings.from_any({"fail_fast": value})


def test_parse_mode() -> None:
    assert [parse_mode(v) for v in (" Auto ", "TRUE", "no", 1)] == ["auto", True, None, None]


# ----------------------------------------------------- the Ray adapter, without a cluster
class _Trial:
    """The attributes of a Tune ``Trial`` that the adapter reads."""

    def __init__(self, tmp_path: Path, trial_id: str, error: BaseException | None,
                 reported: bool = False) -> None:
        import ray.cloudpickle

        self.trial_id, self.has_reported_at_least_once = trial_id, reported
        self.path = str(tmp_path / "storage" / trial_id)
        self.pickled_error_file = str(tmp_path / f"{trial_id}.pkl")
        if error is not None:
            Path(self.pickled_error_file).write_bytes(ray.cloudpickle.dumps(error))


def test_the_tune_callback_and_stopper_share_one_rule(tmp_path, caplog) -> None:
    from ray.tune.stopper import CombinedStopper

    from itwinai_ray.backends.ray.fail_fast import FailFastGuard
    from itwinai_ray.backends.ray.restore import StopWhen

    guard = FailFastGuard.build("auto")
    (callback,) = guard.callbacks
    stop = guard.stop(StopWhen.build({"loss": 0.1}, "loss", "min"))
    assert isinstance(stop, CombinedStopper) and not stop.stop_all()
    assert stop("t", {"loss": 0.05}) and guard.stop(None) is guard.stopper
    bug = AttributeError("'Sequential' object has no attribute 'no_such_layer'")
    caplog.set_level(logging.ERROR, logger="itwinai_ray.backends.ray.fail_fast")
    callback.on_trial_error(iteration=1, trials=[],
                            trial=_Trial(tmp_path, "a", _TaskError(bug, 1)))
    assert not stop.stop_all()
    callback.on_trial_error(iteration=2, trials=[],
                            trial=_Trial(tmp_path, "b", _TaskError(bug, 2)))
    assert stop.stop_all() and guard.rule.decision is not None
    assert guard.rule.decision.log_path == str(tmp_path / "storage" / "a" / "error.txt")
    callback.on_trial_error(iteration=3, trials=[], trial=_Trial(tmp_path, "c", bug))
    assert [r.levelname for r in caplog.records] == ["ERROR"]


def test_a_saved_stopper_comes_back_as_this_runs_stopper() -> None:
    """Tune saves the controller's stopper with the experiment state and puts it back on
    resume: the old decision must not come back with it."""
    import ray.cloudpickle

    old = _guard("auto")
    old.rule.trial_ended(_failed("a"))
    old.rule.trial_ended(_failed("b"))
    saved = ray.cloudpickle.dumps(old.stopper)
    assert old.stopper.stop_all()
    new = _guard("auto")
    assert ray.cloudpickle.loads(saved) is new.stopper and not new.stopper.stop_all()
    none = _guard(False)
    assert none.callbacks == [] and none.stop("x") == "x"
    assert not ray.cloudpickle.loads(saved).stop_all()  # inert in a run without auto


def test_callback_ignores_finished_trials_after_a_bad_read(tmp_path) -> None:
    guard = _guard("auto")
    (callback,) = guard.callbacks
    trial = _Trial(tmp_path, "a", None)
    Path(trial.pickled_error_file).write_bytes(b"not a pickle")
    callback.on_trial_error(iteration=1, trials=[], trial=trial)  # logged, not raised
    assert guard.rule.settled and guard.rule.ends[0].error is None
    callback.on_trial_complete(iteration=2, trials=[], trial=_Trial(tmp_path, "b", None))
    assert not guard.stopper.stop_all()


def _guard(mode: Any) -> Any:
    from itwinai_ray.backends.ray.fail_fast import FailFastGuard

    return FailFastGuard.build(mode)
