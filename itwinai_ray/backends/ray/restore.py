"""Resuming an experiment (``Tuner.restore``) and per-trial stop conditions."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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


#: Tune's saved state of a searcher (a ``SearchGenerator``: counter, total_samples, ...).
_SEARCH_STATE_GLOB = "search_gen_state-*.json"


def extend_search(experiment_dir: str, num_samples: int) -> int | None:
    """Let a saved search go on to ``num_samples`` trials in total (adding trials to a
    finished or interrupted experiment); return how many it held, or None if unchanged.

    The searcher keeps what it learned (Optuna's study is in its saved state). Ray 2.60 has
    no public way to raise a restored experiment's ``num_samples``: the newest saved
    ``SearchGenerator`` state is rewritten with the new total, the one place this is done.

    Raises:
        ConfigurationError: the experiment's search keeps no state to continue (random and
            grid search): start a new experiment, with ``tune_config.warm_start`` if useful.
    """
    from ray import cloudpickle

    states = sorted(Path(experiment_dir).glob(_SEARCH_STATE_GLOB), key=lambda p: p.name)
    if not states:
        raise ConfigurationError(
            f"Cannot add trials to {experiment_dir}: its search (random or grid) keeps no "
            f"state to continue. Start a new experiment (tune_config.warm_start: "
            f"{experiment_dir} seeds Optuna with its trials), or use search_alg: optuna.")
    state = cloudpickle.loads(states[-1].read_bytes())
    held = int(state.get("total_samples", 0))
    if num_samples <= held:
        return None
    state["total_samples"], state["finished"] = num_samples, False
    tmp = states[-1].with_suffix(".tmp")
    tmp.write_bytes(cloudpickle.dumps(state))
    os.replace(tmp, states[-1])
    logger.info("Adding %d trials to the experiment %s (it holds %d): %d in total.",
                num_samples - held, experiment_dir, held, num_samples)
    return held


def _restorer(experiment_dir: str, extend_to: int | None = None) -> Any:
    """A drop-in for ``ray.tune.Tuner(...)`` that continues the experiment in that directory.

    ``Tuner.restore`` brings back the saved tune config (searcher state, ``num_samples``)
    and the saved run config; this run's callbacks (resource registry, progress, MLflow),
    failure config and stop conditions replace the saved ones, which belong to the dead
    driver. ``extend_to`` (trials in total) adds trials (:func:`extend_search`).
    """

    def restore(trainable: Any, *, param_space: dict[str, Any], tune_config: Any,
                run_config: Any) -> Any:
        from ray.tune import Tuner

        from itwinai_ray.backends.ray.hyperband import without_finished_bracket_hang

        logger.info("Resuming the experiment %s.", experiment_dir)
        if extend_to is not None:
            extend_search(experiment_dir, extend_to)
        tuner = Tuner.restore(experiment_dir, trainable=trainable, resume_errored=True,
                              param_space=param_space)
        saved = tuner._local_tuner.get_run_config()  # Ray has no public setter for these
        saved.callbacks = run_config.callbacks
        saved.failure_config = run_config.failure_config
        saved.stop = run_config.stop
        # How trials run (a Train run each, or pooled workers) follows this run's settings,
        # as the trainable does: a saved reuse_actors would pair reused trial processes with
        # Train runs, or pooled trials with processes that do not keep their workers.
        saved_tune = tuner._local_tuner._tune_config
        saved_tune.reuse_actors = tune_config.reuse_actors
        saved_tune.scheduler = without_finished_bracket_hang(saved_tune.scheduler)
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
