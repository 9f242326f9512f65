"""Tune callback that records an experiment in MLflow (:mod:`itwinai_ray.tuning.mlflow_runs`).

Built lazily (no Ray import at module import); runs on the driver. Trials stopped early by a
scheduler are closed as ``KILLED``, errored ones as ``FAILED``, the others as ``FINISHED``.
"""

from __future__ import annotations

import functools
from typing import Any

from itwinai_ray.backends.ray.progress import trial_end_state
from itwinai_ray.tuning.mlflow_runs import ExperimentRuns


def trial_params(trial: Any, keys: list[str] | None) -> dict[str, Any]:
    config = dict(getattr(trial, "config", None) or {})
    return {k: config.get(k) for k in keys} if keys else config


@functools.lru_cache(maxsize=1)
def mlflow_callback_class() -> type:
    """Return the ``MlflowRunsCallback`` class (a ``ray.tune.Callback``)."""
    import ray.tune

    class MlflowRunsCallback(ray.tune.Callback):
        """Parent run per experiment (opened by the caller), child run per trial."""

        def __init__(self, runs: ExperimentRuns, param_keys: list[str] | None = None,
                     max_iterations: int | None = None) -> None:
            self.runs = runs
            self.param_keys = param_keys
            self.max_iterations = max_iterations

        def _ensure(self, trial: Any) -> None:
            if trial.trial_id not in self.runs._open:
                self.runs.trial_started(trial.trial_id, trial_params(trial, self.param_keys))

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._ensure(trial)

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                            **info: Any) -> None:
            self._ensure(trial)  # a reused actor starts without on_trial_start
            self.runs.trial_result(trial.trial_id, result)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                              **info: Any) -> None:
            state = trial_end_state(trial, self.max_iterations)
            self.runs.trial_ended(trial.trial_id, "KILLED" if state == "stopped" else "FINISHED")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.runs.trial_ended(trial.trial_id, "FAILED")

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            for trial in trials:  # paused (PBT) or stopped without a completion hook
                if trial.status == "PAUSED" and trial.trial_id in self.runs._open:
                    self.runs.trial_ended(trial.trial_id, "KILLED")

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            errored = [t for t in trials if t.status == "ERROR"]
            self.runs.end("FAILED" if trials and len(errored) == len(trials) else "FINISHED")

    return MlflowRunsCallback
