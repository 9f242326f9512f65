"""ExperimentSpec: everything a backend needs to run one HPO experiment, in one object.

:func:`~itwinai_ray.tuning.experiment.run_hpo` builds it from the validated plan and settings
(:func:`from_settings`); the Ray backend's ``run_experiment`` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .context import WorkerFn


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment: ``num_samples`` trials of ``worker_fn`` on ``num_workers`` each.

    Attributes:
        worker_fn: picklable ``worker_fn(config, ctx)``; ``config`` is ``trial_config_base``
            updated with the trial's sampled ``param_space`` values (shallow merge).
        param_space: the search space: neutral domains (:mod:`.domains`), ``grid_search``
            dicts and constants; the backend translates it.
        num_workers: workers per trial; 1 runs the worker inside the trial (no worker group).
        use_gpu, resources_per_worker: per-worker resources (default 1 CPU, +1 GPU).
        metric, mode: what the searcher, scheduler and checkpoint ranking optimise. Lists
            (several metrics) go to the searcher only, which must already hold them (e.g.
            optuna); checkpoints are ranked on the scheduler's metric, else the first.
        search_alg, scheduler: neutral :class:`~._algorithm_spec.AlgorithmChoice` specs that
            the backend builds (Ray objects given in Python, or None, are used as they are).
        max_concurrent_trials: capped at what the cluster can run at once; None = that.
        storage_path, name: results go to ``storage_path/name``.
        checkpoint_num_to_keep: best checkpoints kept per trial (by ``metric``); None = all.
        max_failures: retries of a failed trial, resumed from its last checkpoint.
        time_budget_s: stop the whole experiment after this many seconds (results so far kept).
        max_iterations: reports a trial makes when it runs to the end (e.g. epochs); tells
            "stopped early" from "finished" in the progress view, MLflow and ``results``.
        progress: show the live progress view (rich in a terminal, plain lines otherwise).
        terminal: the stream the progress view writes to (default ``sys.stdout``).
        capture_output: each trial process and Train worker writes its stdout/stderr to
            ``trial.log`` / ``worker-<rank>.log`` in its trial directory.
        scope: what ranks a trial in the progress view (``best``, ``last``, ``last-N-avg``).
        verbose: Ray Tune's own output (``RunConfig.verbose``): 0 none (default), 1-3 more.
        mlflow: one parent run per experiment and a child run per trial: True (default:
            ``sqlite:///<storage_path>/<name>/mlflow.db``), False, or a mapping
            (``tracking_uri``, ``experiment_name``, ``tags``).
        resume: continue the experiment ``storage_path/name`` (after a crash or a time
            limit) with ``Tuner.restore(resume_errored=True)``: finished trials are kept,
            unfinished and errored ones resume from their last checkpoint, the searcher and
            ``num_samples`` come from the saved state.
        fail_fast: stop the experiment early (results so far kept): ``"auto"`` when the
            first 2 trials to end both errored for good before reporting, with the same
            exception type and message; True at the first trial error (Tune's own
            fail_fast); False never.
        worker_max_failures: in-place restarts of a trial's worker group (num_workers >= 2)
            from its last checkpoint after a worker error or death, before the trial fails.
        stop: per-trial stop conditions ``{key: threshold}``.
        torch_config: the trials' process group (``backend``, ``timeout_s``).
        extend_to: with ``resume``: add trials until the experiment holds this many (a
            searcher that keeps its state, e.g. optuna).
        stop_at: when the stop signal of a time limit is due (Unix seconds): a trial whose
            first report is not expected before it waits (:mod:`.walltime`).
        reuse_actors: whether a trial process serves the next trial (None: only with
            ``num_workers == 1``). True with ``num_workers >= 2``: trials run on reusable
            workers that each trial process keeps, instead of one Train V2 run each.
    """

    worker_fn: WorkerFn
    param_space: dict[str, Any]
    num_workers: int
    use_gpu: bool
    resources_per_worker: Mapping[str, float] | None
    metric: str | list[str]
    mode: str | list[str]
    num_samples: int
    storage_path: str
    name: str
    search_alg: Any = None
    scheduler: Any = None
    max_concurrent_trials: int | None = None
    checkpoint_num_to_keep: int | None = None
    max_failures: int = 0
    time_budget_s: float | None = None
    trial_config_base: dict[str, Any] | None = None
    max_iterations: int | None = None
    progress: bool = True
    terminal: Any = None
    capture_output: bool = False
    scope: str = "best"
    verbose: int = 0
    mlflow: Any = True
    resume: bool = False
    fail_fast: bool | str = "auto"
    worker_max_failures: int = 0
    stop: Mapping[str, float] | None = None
    torch_config: Mapping[str, Any] | None = None
    extend_to: int | None = None
    stop_at: float | None = None
    reuse_actors: bool | None = None


def from_settings(worker_fn: WorkerFn, plan: Any, name: str, storage: str, resume: bool, *,
                  scaling: Any, tune: Any, run: Any, torch: Any, terminal: Any,
                  stop_at: float | None = None) -> ExperimentSpec:
    """The spec of a planned experiment (``plan``: :class:`~.experiment.Plan`) with its
    scaling, tune, run and torch settings."""
    return ExperimentSpec(
        worker_fn=worker_fn, param_space=plan.space,
        num_workers=scaling.num_workers, use_gpu=scaling.use_gpu,
        resources_per_worker=scaling.resources_per_worker,
        metric=plan.metric, mode=plan.mode, num_samples=tune.num_samples,
        search_alg=plan.searcher, scheduler=plan.scheduler,
        max_concurrent_trials=tune.max_concurrent_trials, time_budget_s=tune.time_budget_s,
        storage_path=storage, name=name, checkpoint_num_to_keep=run.checkpoint_num_to_keep,
        max_failures=run.max_failures, resume=resume, fail_fast=run.fail_fast,
        worker_max_failures=run.worker_max_failures, stop=tune.stop,
        max_iterations=plan.max_epochs, progress=run.progress, verbose=run.verbose,
        terminal=terminal, scope=tune.scope, capture_output=run.verbose == 0,
        mlflow=run.mlflow, torch_config=torch.as_ray_kwargs(),
        extend_to=run.add_trials_to if resume else None, stop_at=stop_at,
        reuse_actors=tune.reuse_actors)
