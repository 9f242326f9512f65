"""What watches an experiment from the driver: the live progress view, the MLflow runs and
the trial journal (:mod:`itwinai_ray.tuning.journal`).

:func:`start` (called by :func:`itwinai_ray.backends.ray.driver.run` before the
Tuner runs) writes ``itwinai_ray.json`` into the experiment directory (metric, mode, budget,
search-space keys and their Optuna distributions, MLflow store: what ``itwinai-ray results``
and ``mlflow-ui`` read later), opens the MLflow parent run and the journal, and returns the
Tune callbacks. :meth:`Observers.close` closes whatever is still open, also after Ctrl-C or a
Tune error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itwinai_ray.tuning.journal import JOURNAL_FILE, JournalWriter, Objectives
from itwinai_ray.tuning.mlflow_runs import ExperimentRuns, MlflowSettings
from itwinai_ray.tuning.objective import TunedMetrics

logger = logging.getLogger(__name__)

META_FILE = "itwinai_ray.json"


@dataclass
class Observers:
    callbacks: list[Any] = field(default_factory=list)
    runs: ExperimentRuns | None = None
    progress: Any = None
    journal: JournalWriter | None = None
    #: ``itwinai_ray.json`` and what this run wrote there.
    meta: tuple[Path, str] | None = None

    def close(self, error: BaseException | None = None) -> None:
        if self.meta is not None:
            # Written again after Tune: on resume (Ray 2.60) Tune copies the experiment's
            # top-level *.json aside and writes the copies back, i.e. the previous run's.
            self.meta[0].write_text(self.meta[1])
        if self.progress is not None and self.progress.view._live is not None:
            self.progress.view.stop()  # Ctrl-C: leave the terminal clean
        if self.runs is not None:
            if error is None:
                status = "FINISHED"
            else:
                status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            self.runs.end(status)
        if self.journal is not None:
            self.journal.close()


def start(experiment_dir: str | Path, name: str, *, metric: Any, mode: Any,
          num_samples: int, time_budget_s: float | None, param_keys: list[str],
          max_iterations: int | None, progress: bool, mlflow: Any,
          terminal: Any = None, scope: str = "best",
          param_space: Mapping[str, Any] | None = None,
          objectives: list[tuple[str, str]] | None = None, journal: bool = True) -> Observers:
    """Write the experiment's metadata, open the MLflow parent run and the journal, build the
    callbacks.

    ``terminal``: where the progress view writes (default: ``sys.stdout`` when it writes).
    ``param_space``: the Tune search space (its domains give the journal's distributions).
    ``objectives``: every tuned ``(metric, mode)`` (default: ``metric``, ``mode``)."""
    from itwinai_ray.backends.ray.journal import journal_callback_class
    from itwinai_ray.backends.ray.mlflow_callback import mlflow_callback_class
    from itwinai_ray.backends.ray.progress import make_progress_callback
    from itwinai_ray.tuning._journal_params import to_json

    experiment_dir = Path(experiment_dir)
    settings = MlflowSettings.from_any(mlflow)
    obs = Observers()
    first_metric, first_mode = TunedMetrics.parse(metric, mode).first
    if progress:
        obs.progress = make_progress_callback(first_metric, first_mode, num_samples,
                                              time_budget_s, max_iterations,
                                              stream=terminal, scope=scope)
        obs.callbacks.append(obs.progress)
    if settings.enabled:
        obs.runs = ExperimentRuns(settings, experiment_dir, name, params={
            "metric": metric, "mode": mode, "num_samples": num_samples,
            "search_space": ", ".join(param_keys)})
        obs.runs.start_in_background()  # overlaps with Tune starting the first trials
        obs.callbacks.append(mlflow_callback_class()(obs.runs, param_keys, max_iterations))
    dists = {}
    if journal:
        obs.journal, dists = _start_journal(experiment_dir, name, param_space or {},
                                            objectives or [(metric, mode)], scope)
        obs.callbacks.append(journal_callback_class()(obs.journal, param_keys, dists,
                                                      max_iterations))
    meta = {"name": name, "metric": metric, "mode": mode, "num_samples": num_samples,
            "time_budget_s": time_budget_s, "max_iterations": max_iterations,
            "param_keys": param_keys, "scope": scope, "mlflow": None,
            "journal": JOURNAL_FILE if journal else None,
            "distributions": {k: to_json(d) for k, d in dists.items()}}
    if obs.runs is not None:
        meta["mlflow"] = {"tracking_uri": obs.runs.settings.tracking_uri,
                          "experiment_name": obs.runs.settings.experiment_name}
    experiment_dir.mkdir(parents=True, exist_ok=True)
    obs.meta = (experiment_dir / META_FILE, json.dumps(meta, indent=2, default=str))
    obs.meta[0].write_text(obs.meta[1])
    return obs


def _start_journal(experiment_dir: Path, name: str, param_space: Mapping[str, Any],
                   objectives: list[tuple[str, str]], scope: str
                   ) -> tuple[JournalWriter, dict[str, Any]]:
    """The journal writer, opening on its own thread, and the search space's distributions."""
    from itwinai_ray.backends.ray.journal import distributions

    writer = JournalWriter(experiment_dir, Objectives.build(
        [m for m, _ in objectives], [m for _, m in objectives], scope), name=name)
    writer.start_in_background()
    return writer, distributions(param_space)
