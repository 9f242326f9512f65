"""The Ray side of ``run_config.fail_fast: auto`` (the rule is in
:mod:`itwinai_ray.tuning.fail_fast`).

Two Tune objects share one :class:`~itwinai_ray.tuning.fail_fast.FirstTrialsFailAlike`:

- a ``Callback`` on the driver feeds it each trial end: ``on_trial_error`` (Tune calls it
  only when a trial errored for good, i.e. after its ``max_failures`` retries; a retry
  goes to ``on_trial_recover``) and ``on_trial_complete`` (finished, or stopped by a
  scheduler or ``stop`` condition). When the rule triggers it logs the error once;
- a ``Stopper`` whose ``stop_all()`` is True once the rule decided. Tune checks it after
  every event (``TuneController._stop_experiment_if_needed``): the searcher is finished,
  running and pending trials are stopped (TERMINATED, not errors) and results are written.

Why sharing one object works (Ray 2.60 sources): ``Tuner`` copies the ``RunConfig`` with
``copy.copy`` (shallow), and ``tune.run`` hands the callbacks list and the experiment's
stopper to the ``TuneController`` as they are: nothing deep-copies them, so both hold the
same rule. One trap: Tune saves the controller's attributes, its stopper included, in
``experiment_state-*.json`` and on resume puts them back over the new controller's
(``TuneController.__getstate__`` / ``resume``), after :func:`.restore._restorer` has
replaced the stopper in the run config. Measured: a resumed experiment then inherited the old
decision and stopped all its trials at once. So the stopper pickles as a reference to *this
run's* stopper (:func:`_live_stopper`), which :meth:`FailFastGuard.build` records.

A trial's error is read on the driver from the pickled exception Tune writes into the trial's
driver staging directory (``Trial.pickled_error_file``, written in ``Trial.handle_error``
before the callbacks run); the path shown to the user is ``error.txt`` in the trial's storage
directory, which outlives the staging one.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from itwinai_ray.tuning.fail_fast import FirstTrialsFailAlike, TrialEnd, error_signature

logger = logging.getLogger(__name__)

ERROR_FILE = "error.txt"

#: The stopper of the experiment this driver process runs now (None: not ``auto``).
_LIVE: dict[str, Any] = {"stopper": None}


def _live_stopper() -> Any:
    """What a saved ``FailFastStopper`` becomes when Tune loads it: this run's stopper, or an
    inert one (a run without ``auto``, or a saved state read back for its results)."""
    if _LIVE["stopper"] is None:
        return _ray_classes()[1](FirstTrialsFailAlike())
    return _LIVE["stopper"]


def _trial_error(trial: Any) -> BaseException | None:
    """The exception that failed ``trial``, unpickled from its driver staging directory."""
    import ray.cloudpickle

    path = getattr(trial, "pickled_error_file", None)
    if not path or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        error = ray.cloudpickle.load(f)
    return error if isinstance(error, BaseException) else None


def trial_end(trial: Any, errored: bool) -> TrialEnd:
    """What the rule needs to know about a Tune ``Trial`` that just ended.

    A trial whose error cannot be read counts as "another error": it settles the rule
    without stopping, never the reverse.
    """
    signature = None
    if errored:
        try:
            signature = error_signature(_trial_error(trial))
        except Exception:  # noqa: BLE001 - a callback must never fail the experiment
            logger.warning("fail_fast: could not read the error of trial %s", trial,
                           exc_info=True)
    try:
        trial_dir = getattr(trial, "path", None) or getattr(trial, "local_path", None)
    except RuntimeError:  # Tune: no trial directory name yet
        trial_dir = None
    return TrialEnd(
        trial_id=str(getattr(trial, "trial_id", trial)), errored=errored,
        reported=bool(getattr(trial, "has_reported_at_least_once", False)),
        error=signature,
        log_path=os.path.join(str(trial_dir), ERROR_FILE) if trial_dir else None)


@functools.lru_cache(maxsize=1)
def _ray_classes() -> tuple[type, type]:
    """(FailFastCallback, FailFastStopper), built on first use: no Ray import at load."""
    import ray.tune
    from ray.tune.stopper import Stopper

    class FailFastCallback(ray.tune.Callback):
        """Feeds each trial end to the rule; logs the decision once."""

        def __init__(self, rule: FirstTrialsFailAlike) -> None:
            self.rule = rule

        def _ended(self, trial: Any, errored: bool) -> None:
            if self.rule.settled:
                return
            decision = self.rule.trial_ended(trial_end(trial, errored))
            if decision is not None:
                logger.error("%s", decision.message())

        def on_trial_error(self, iteration: int, trials: list, trial: Any,
                           **info: Any) -> None:
            self._ended(trial, errored=True)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                              **info: Any) -> None:
            self._ended(trial, errored=False)

    class FailFastStopper(Stopper):
        """Stops the whole experiment once the rule decided; never a single trial."""

        def __init__(self, rule: FirstTrialsFailAlike) -> None:
            self.rule = rule

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return self.rule.decision is not None

        def __reduce__(self) -> tuple[Any, tuple[()]]:
            # Not the rule: a resumed run must not inherit the old run's decision.
            return _live_stopper, ()

    return FailFastCallback, FailFastStopper


@dataclass
class FailFastGuard:
    """What ``run_experiment`` adds to the Tune ``RunConfig`` for a ``fail_fast`` mode.

    For ``auto``: a callback and a stopper sharing one rule. For ``True`` / ``False``
    nothing (Tune's own ``FailureConfig(fail_fast=True)`` handles ``True``).
    """

    rule: FirstTrialsFailAlike | None = None
    callbacks: list[Any] = field(default_factory=list)
    stopper: Any = None

    @classmethod
    def build(cls, mode: bool | str) -> FailFastGuard:
        if mode != "auto":
            _LIVE["stopper"] = None
            return cls()
        rule = FirstTrialsFailAlike()
        callback_cls, stopper_cls = _ray_classes()
        guard = cls(rule=rule, callbacks=[callback_cls(rule)], stopper=stopper_cls(rule))
        _LIVE["stopper"] = guard.stopper
        return guard

    def stop(self, stop: Any) -> Any:
        """Tune's ``stop`` argument: ``stop`` (e.g. a :class:`StopWhen`) and this stopper."""
        if self.stopper is None:
            return stop
        if stop is None:
            return self.stopper
        from ray.tune.stopper import CombinedStopper, FunctionStopper, Stopper

        first = stop if isinstance(stop, Stopper) else FunctionStopper(stop)
        return CombinedStopper(first, self.stopper)
