"""Tune callback that writes the experiment's trial journal (:mod:`itwinai_ray.tuning.journal`),
and the mapping of Ray Tune search-space domains to Optuna distributions.

Built lazily (no Ray import at module import); runs on the driver and only queues work for
the :class:`~itwinai_ray.tuning.journal.JournalWriter` thread. A trial that a scheduler or a
stop condition stopped (:func:`.progress.trial_end_state`) is PRUNED, an errored one FAIL,
the others COMPLETE; a trial the end of the experiment stopped (time budget, fail-fast) is
PRUNED too.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from typing import Any

from itwinai_ray.backends.ray.mlflow_callback import trial_params
from itwinai_ray.backends.ray.progress import trial_end_state
from itwinai_ray.backends.ray.translate import sampler_of
from itwinai_ray.tuning._journal_params import categorical
from itwinai_ray.tuning.journal import COMPLETE, FAIL, PRUNED, JournalWriter

logger = logging.getLogger(__name__)

#: ``randn`` has no bounds: its distribution spans mean +- this many sd (values beyond widen it).
_NORMAL_SDS = 3.0


def domain_distribution(domain: Any) -> Any:
    """The Optuna distribution of one ``param_space`` entry, or None for a constant, a
    ``sample_from`` function or a nested space (not recorded as params).

    ``choice`` and ``grid_search`` -> categorical; float domains -> ``FloatDistribution``
    (``log`` for log-uniform, ``step`` = q when quantized, but not both: Optuna has no
    quantized log scale); integer ones -> ``IntDistribution`` (Ray excludes the upper bound
    unless quantized)."""
    from optuna.distributions import FloatDistribution, IntDistribution
    from ray.tune.search import sample

    if isinstance(domain, Mapping) and set(domain) == {"grid_search"}:
        return categorical(domain["grid_search"])
    if isinstance(domain, sample.Categorical):
        return categorical(domain.categories)
    if not isinstance(domain, (sample.Float, sample.Integer)):
        return None
    sampler, q = sampler_of(domain)
    log = isinstance(sampler, sample.LogUniform)
    if isinstance(sampler, sample.Normal):
        spread = _NORMAL_SDS * sampler.sd
        return FloatDistribution(sampler.mean - spread, sampler.mean + spread)
    if isinstance(domain, sample.Integer):
        high = int(domain.upper) - (1 if q is None or q == 1 else 0)
        step = 1 if log or q is None else int(q)
        high = max(int(domain.lower), high)
        return IntDistribution(int(domain.lower), high, log=log, step=step)
    if not (math.isfinite(domain.lower) and math.isfinite(domain.upper)):
        return None
    return FloatDistribution(float(domain.lower), float(domain.upper), log=log,
                             step=None if log or q is None else float(q))


def distributions(param_space: Mapping[str, Any]) -> dict[str, Any]:
    """Param -> Optuna distribution for every sampled entry of a Tune ``param_space``.
    A domain Optuna cannot express is left out with a warning (the trial still runs)."""
    out = {}
    for key, domain in param_space.items():
        try:
            dist = domain_distribution(domain)
        except (ValueError, TypeError) as err:
            logger.warning("Journal: no Optuna distribution for %r (%s); its values are not "
                           "recorded.", key, err)
            continue
        if dist is not None:
            out[str(key)] = dist
    return out


@functools.lru_cache(maxsize=1)
def journal_callback_class() -> type:
    """Return the ``JournalCallback`` class (a ``ray.tune.Callback``)."""
    import ray.tune

    class JournalCallback(ray.tune.Callback):
        """Tune events -> the experiment's journal; never fails the experiment."""

        def __init__(self, writer: JournalWriter, param_keys: list[str] | None,
                     dists: Mapping[str, Any], max_iterations: int | None = None) -> None:
            self.writer = writer
            self.param_keys = param_keys
            self.dists = dict(dists)
            self.max_iterations = max_iterations

        def _ensure(self, trial: Any) -> None:
            if trial.trial_id not in self.writer.started:
                path = getattr(trial, "local_path", None) or getattr(trial, "path", None)
                self.writer.trial_started(trial.trial_id, trial_params(trial, self.param_keys),
                                          self.dists, str(path) if path else None)

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._ensure(trial)

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                            **info: Any) -> None:
            self._ensure(trial)  # a reused actor starts without on_trial_start
            step = int(result.get("training_iteration", 0) or 0)
            self.writer.trial_reported(trial.trial_id, step, result)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                              **info: Any) -> None:
            stopped = trial_end_state(trial, self.max_iterations) == "stopped"
            self.writer.trial_ended(trial.trial_id, PRUNED if stopped else COMPLETE)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.writer.trial_ended(trial.trial_id, FAIL, error_file=_error_file(trial))

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            for trial in trials:  # ended by the experiment's end, without a trial hook
                if trial.status == "TERMINATED":
                    self.writer.trial_ended(trial.trial_id, PRUNED)
                elif trial.status == "ERROR":
                    self.writer.trial_ended(trial.trial_id, FAIL, error_file=_error_file(trial))
            self.writer.close()

    return JournalCallback


def _error_file(trial: Any) -> str | None:
    """Where Tune wrote the trial's error (read on the writer thread, not here)."""
    try:
        return trial.error_file
    except AttributeError:
        return None
