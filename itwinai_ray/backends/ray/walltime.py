"""The driver side of :mod:`itwinai_ray.tuning.walltime`: a Tune callback that measures each trial's time from
start to first report, keeps it in ``walltime.json`` for the trials to read, and says which
trials wait for the next allocation."""

from __future__ import annotations

import logging
import time
from typing import Any

from itwinai_ray.tuning.walltime import WalltimeState

logger = logging.getLogger(__name__)


def walltime_callback(path: str, stop_at: float) -> Any:
    """A Tune callback for an experiment whose stop signal is due at ``stop_at``."""
    import ray.tune

    class MeasureFirstReports(ray.tune.Callback):
        def __init__(self) -> None:
            self._started: dict[str, float] = {}  # trial id -> (re)start, until its report
            self._state = WalltimeState()

        def setup(self, **info: Any) -> None:
            # Times measured in earlier allocations of this experiment still count.
            self._state = WalltimeState(stop_at, WalltimeState.load(path).first_report_s)
            self._state.save(path)

        def on_trial_start(self, iteration: int, trials: list, trial: Any,
                           **info: Any) -> None:
            now = time.time()
            reason = self._state.hold_reason(now)
            if reason is not None:  # held (see trial.py): its wait is not a start-up time
                logger.info("Trial %s waits: %s.", trial.trial_id, reason)
                return
            self._started[trial.trial_id] = now

        def on_trial_result(self, iteration: int, trials: list, trial: Any,
                            result: dict, **info: Any) -> None:
            started = self._started.pop(trial.trial_id, None)
            if started is not None:
                self._state.add(time.time() - started)
                self._state.save(path)

        def __getstate__(self) -> dict[str, Any]:  # pickled into the experiment state
            return {"_started": {}, "_state": WalltimeState()}

    return MeasureFirstReports()
