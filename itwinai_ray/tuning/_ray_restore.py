"""Resuming an experiment (``Tuner.restore``) and per-trial stop conditions."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from itwinai_ray.errors import ConfigurationError

logger = logging.getLogger(__name__)


def _can_restore(experiment_dir: str) -> bool:
    from ray.tune import Tuner

    return os.path.isdir(experiment_dir) and Tuner.can_restore(experiment_dir)


def _nothing_to_resume(what: str) -> str:
    return (f"Nothing to resume: {what} holds no saved experiment state (tuner.pkl). Run "
            f"once without resume to start it, use resume: auto (continue if it exists, else "
            f"start), or check run_config.storage_path and run_config.name.")


def experiment_to_resume(storage_path: str, name: str | None, prefix: str,
                         required: bool = True) -> str | None:
    """The experiment name to resume under ``storage_path``.

    The rule: with a ``name`` (``run_config.name``), that experiment. Without one, the
    newest experiment whose directory name starts with ``prefix`` (automatic names are
    ``<prefix><YYYYmmdd-HHMMSS>``, so the newest sorts last) and that Tune can restore.

    Returns:
        The name, or None when there is nothing to resume and ``required`` is False.

    Raises:
        ConfigurationError: nothing to resume and ``required``.
    """
    root = os.path.abspath(storage_path)
    if name:
        if _can_restore(os.path.join(root, name)):
            return name
        what = os.path.join(root, name)
    else:
        found = sorted(d for d in (os.listdir(root) if os.path.isdir(root) else [])
                       if d.startswith(prefix) and _can_restore(os.path.join(root, d)))
        if found:
            return found[-1]
        what = f"{root} (no experiment named {prefix}*; or give run_config.name)"
    if required:
        raise ConfigurationError(_nothing_to_resume(what))
    return None


def _restorer(experiment_dir: str) -> Any:
    """A drop-in for ``ray.tune.Tuner(...)`` that continues the experiment in that directory.

    ``Tuner.restore`` brings back the saved tune config (searcher state, ``num_samples``)
    and the saved run config; this run's callbacks (resource registry, progress, MLflow),
    failure config and stop conditions replace the saved ones, which belong to the dead
    driver.
    """

    def restore(trainable: Any, *, param_space: dict[str, Any], tune_config: Any,
                run_config: Any) -> Any:
        from ray.tune import Tuner

        logger.info("Resuming the experiment %s.", experiment_dir)
        tuner = Tuner.restore(experiment_dir, trainable=trainable, resume_errored=True,
                              param_space=param_space)
        saved = tuner._local_tuner.get_run_config()  # Ray has no public setter for these
        saved.callbacks = run_config.callbacks
        saved.failure_config = run_config.failure_config
        saved.stop = run_config.stop
        return tuner

    return restore


@dataclass(frozen=True)
class StopWhen:
    """Per-trial stop conditions (a picklable Tune ``stop`` callable).

    A trial stops when one condition holds: for the tuned ``metric`` when it reaches its
    threshold in the direction of ``mode`` (``<=`` for min, ``>=`` for max), for every other
    key (``training_iteration``, ``time_total_s``, an accuracy) when ``>=`` its threshold.
    """

    conditions: tuple[tuple[str, float], ...]
    metric: str
    mode: str

    @classmethod
    def build(cls, stop: Mapping[str, float] | None, metric: Any, mode: Any) -> StopWhen | None:
        if not stop:
            return None
        return cls(tuple((str(k), float(v)) for k, v in stop.items()),
                   metric if isinstance(metric, str) else "", str(mode))

    @staticmethod
    def reported_keys(stop: Mapping[str, float] | None) -> tuple[str, ...]:
        """Stop keys the trainer must report (not the ones Tune adds to every result)."""
        from ray.tune.result import AUTO_RESULT_KEYS

        return tuple(k for k in (stop or {}) if k not in AUTO_RESULT_KEYS)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        for key, threshold in self.conditions:
            value = result.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if key == self.metric and self.mode == "min":
                if value <= threshold:
                    return True
            elif value >= threshold:
                return True
        return False
