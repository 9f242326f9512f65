"""One HPO experiment, from a planned search to written results: shared by both integrations.

:class:`~itwinai_ray.trainer.ray_trainer.RayTorchTrainer` (distributed trials) and
:func:`~itwinai_ray.tuning.pipeline_hpo.tune_pipeline` (the run_trial path) differ only in
the ``worker_fn`` each trial runs. Everything else goes through :func:`run_hpo`: connecting
to Ray, the backend run, the ranked results and ``results.json``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TrialsFailedError
from . import backend, interrupts, walltime
from . import resources as res
from ._algorithm_spec import AlgorithmChoice
from .context import WorkerFn
from .experiment_spec import from_settings
from .results import HPOResults
from .saved_state import unfinished_trials
from .settings import RunSettings, ScalingSettings, TorchSettings, TuneSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a validated experiment needs besides the worker function: neutral specs (a
    :mod:`.domains` search space, :class:`~._algorithm_spec.AlgorithmChoice` searcher and
    scheduler) that the backend translates when it assembles the experiment."""

    space: dict[str, Any]
    metric: str | list[str]  # a list: several metrics (multi-objective)
    mode: str | list[str]
    searcher: AlgorithmChoice
    scheduler: AlgorithmChoice
    name: str
    max_epochs: int | None = None


def plan_search(space: dict[str, Any], tune: TuneSettings, *, name: str,
                max_epochs: int | None, who: str) -> Plan:
    """Metric, mode, searcher and scheduler for a validated search space (no Ray started)."""
    from . import algorithms

    metric = algorithms.resolve_metric(tune.metric, tune.scheduler)
    mode = algorithms.resolve_mode(tune.mode, tune.scheduler)
    # Several metrics (multi-objective) become lists; bohb gets its HyperBandForBOHB.
    metric, mode = algorithms.normalize_objectives(metric, mode)
    search_alg = tune.search_alg
    if tune.warm_start:
        from . import warm_start

        search_alg = warm_start.prepare(tune.warm_start, search_alg, metric, mode, space)
    searcher, space, scheduler = algorithms.resolve_algorithms(
        search_alg, tune.scheduler, metric, mode, space, max_t=max_epochs,
        num_samples=tune.num_samples)
    return Plan(space=space, metric=metric, mode=mode, searcher=searcher,
                scheduler=scheduler, name=name, max_epochs=max_epochs)


def run_hpo(worker_fn: WorkerFn, plan: Plan, *, scaling: ScalingSettings, tune: TuneSettings,
            run: RunSettings, ray_init: dict[str, Any] | None = None,
            torch: TorchSettings | None = None) -> HPOResults:
    """Run the experiment on Ray (local unless an address is given); return its results.

    ``results.json`` is written into the experiment directory before anything else can fail.
    Raises :class:`TrialsFailedError` (exit code 4) when every trial failed.
    """
    from .storage import check_storage

    storage = run.resolved_storage_path()
    check_storage(storage, run.min_free_disk_gb)  # before Ray starts
    stop_at = walltime.stop_at_from_env()
    if stop_at is not None:
        log.info("Stop signal due in %.0f s (%s): a trial that cannot report before it "
                 "waits for the next allocation.", stop_at - time.time(),
                 walltime.STOP_AT_ENV)
    name, resume = resume_target(storage, plan.name, run)
    ray_init, sized = res.size_local_ray(
        ray_init or {}, res.trial_need(scaling.num_workers, scaling.resources_per_worker,
                                       scaling.use_gpu), os.cpu_count())
    if sized:
        log.info("%s", sized)
    grid = backend.run(from_settings(worker_fn, plan, name, storage, resume, scaling=scaling,
                                      tune=tune, run=run, torch=torch or TorchSettings(),
                                      terminal=None, stop_at=stop_at), ray_init)
    results = HPOResults.from_result_grid(
        grid, plan.metric, plan.mode, list(plan.space), max_epochs=plan.max_epochs,
        experiment_path=f"{storage}/{name}", scope=tune.scope,
        unfinished=unfinished_trials(os.path.join(storage, name)))
    results.interrupted = results.interrupted or interrupts.requested()
    write_results(results)
    if results.interrupted:
        log.warning("Interrupted: %d of %d trials done; the experiment state is saved. "
                    "Continue it with --resume (or run_config.resume: true / auto).",
                    results.done(), len(results.rows))
    else:
        check_any_succeeded(results)
    log.info("%s", results.summary())
    return results


def new_experiment_name(storage: str, planned_name: str) -> str:
    """``planned_name``, or the next free ``<name>-N`` (with a warning) when an earlier run
    holds it: two runs never share an experiment directory."""
    from .storage import fresh_experiment_name

    name = fresh_experiment_name(storage, planned_name)
    if name != planned_name:
        log.warning("Experiment '%s' already exists in %s (an earlier run): this run is '%s'. "
                    "Continue the earlier one with --resume, or set run_config.name.",
                    planned_name, storage, name)
    return name


def resume_target(storage: str, planned_name: str, run: RunSettings) -> tuple[str, bool]:
    """(experiment name, resume?) for ``run.resume`` (see ``experiment_to_resume``).

    Without ``run.name`` the planned name is ``<prefix>_<timestamp>``: the newest experiment
    with that prefix is resumed.
    """
    if not run.resume:
        return new_experiment_name(storage, planned_name), False
    prefix = "" if run.name else planned_name.rsplit("_", 1)[0] + "_"
    found = backend.experiment_to_resume(storage, run.name, prefix,
                                         required=run.resume is True)
    return (found, True) if found else (planned_name, False)


def write_results(results: HPOResults) -> None:
    """results.json in the experiment directory."""
    if results.experiment_path and Path(results.experiment_path).is_dir():
        (Path(results.experiment_path) / "results.json").write_text(results.to_json())


def check_any_succeeded(results: HPOResults) -> None:
    """Raise when every trial failed; log each failed trial otherwise."""
    errors = [r for r in results.rows if r.status == "error"]
    ran = [r for r in results.rows if r.status != "not started"]  # fail_fast stops the rest
    if ran and len(errors) == len(ran):
        skipped = len(results.rows) - len(ran)
        raise TrialsFailedError(
            f"All {len(errors)} trials{' that started' if skipped else ''} failed"
            f"{f' ({skipped} not started)' if skipped else ''}. First error "
            f"({errors[0].trial_id}): "
            f"{errors[0].error}. Trial logs: {errors[0].logs()}"
        )
    for row in errors:
        log.warning("Trial %s failed: %s (logs: %s)", row.trial_id, row.error, row.logs())
