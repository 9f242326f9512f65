"""Tune callback that feeds the live progress view (:mod:`itwinai_ray.tuning.progress`).

The class is built lazily (no Ray import at module import). It runs on the driver and only
translates Tune events into :class:`~itwinai_ray.tuning.progress.ProgressState` updates; the
rendering is Ray-free.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from itwinai_ray.tuning.progress import ProgressState, ProgressView, end_state
from itwinai_ray.tuning.scope import Scope

logger = logging.getLogger(__name__)


def trial_end_state(trial: Any, max_iterations: int | None) -> str:
    """``finished`` or ``stopped`` for a trial that completed without error."""
    last = getattr(trial, "last_result", None) or {}
    return end_state(bool(last.get("done")), int(last.get("training_iteration", 0) or 0),
                     max_iterations)


@functools.lru_cache(maxsize=1)
def progress_callback_class() -> type:
    """Return the ``ProgressCallback`` class (a ``ray.tune.Callback``)."""
    import ray.tune

    class ProgressCallback(ray.tune.Callback):
        """Translates Tune events into a :class:`ProgressView`; never fails the experiment."""

        def __init__(self, view: ProgressView, max_iterations: int | None = None) -> None:
            self.view = view
            self.max_iterations = max_iterations

        @property
        def state(self) -> ProgressState:
            return self.view.state

        def setup(self, stop: Any = None, num_samples: int | None = None,
                  total_num_samples: int | None = None, **info: Any) -> None:
            if total_num_samples and total_num_samples > 0:  # grid points included
                self.state.total = int(total_num_samples)
            self.view.start()

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.state.set_state(trial.trial_id, "running")

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                            **info: Any) -> None:
            self.state.result(trial.trial_id, result.get("training_iteration", 0), result)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                              **info: Any) -> None:
            self.state.set_state(trial.trial_id, trial_end_state(trial, self.max_iterations))
            self.view.update()

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.state.set_state(trial.trial_id, "errored")
            self.view.update()

        def on_trial_recover(self, iteration: int, trials: list, trial: Any,
                             **info: Any) -> None:
            self.state.set_state(trial.trial_id, "pending")

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            for trial in trials:  # trials created by the searcher but not started yet
                if trial.trial_id not in self.state.trials and trial.status == "PENDING":
                    self.state.set_state(trial.trial_id, "pending")
                elif trial.trial_id not in self.state.trials and trial.status in (
                        "TERMINATED", "ERROR"):  # ended in an earlier run (--resume)
                    self.state.set_state(trial.trial_id, "errored" if trial.status == "ERROR"
                                         else trial_end_state(trial, self.max_iterations))
                elif trial.status == "RUNNING":  # also reused actors (no start hook)
                    self.state.set_state(trial.trial_id, "running")
            self.view.update()

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            self.view.stop()

    return ProgressCallback


def make_progress_callback(metric: str | None, mode: str | None, num_samples: int | None,
                           time_budget_s: float | None, max_iterations: int | None = None,
                           scope: str = "best", **view_kwargs: Any) -> Any:
    """A ready ``ProgressCallback`` with a fresh state and view."""
    state = ProgressState(metric=metric, mode=mode, total=num_samples,
                          time_budget_s=time_budget_s, scope=Scope.parse(scope))
    return progress_callback_class()(ProgressView(state, **view_kwargs), max_iterations)
