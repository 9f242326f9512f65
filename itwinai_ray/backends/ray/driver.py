"""The Ray backend: the one place (with its ``_ray_*`` modules) that talks to Ray Train V2
and Ray Tune.

Trainer code is a picklable ``worker_fn(config, ctx: WorkerContext) -> None`` that trains one
trial on one worker and calls ``ctx.report(metrics, checkpoint_dir)`` on every rank per epoch.
Each trial is one Tune function trainable:

- ``num_workers == 1`` (fast path): ``worker_fn`` runs in the trial process; ``ctx.report`` is
  ``ray.tune.report`` with the checkpoint.
- ``num_workers >= 2``: the trial (0.01 CPU) runs a Train V2 ``TorchTrainer.fit()`` in a thread.
  A Train ``UserCallback`` puts each report (rank 0's metrics, the persisted checkpoint) in a
  mailbox of size 1 kept in the experiment's registry actor (no process per trial); the trial
  re-reports it to Tune with the checkpoint, so Tune holds
  real checkpoints (PBT, restore, ``get_best_result().checkpoint``).

  Tune copies each checkpoint into the trial's directory; the Train run directory
  (``storage_path/name/_train_runs/<run>``) is deleted when the attempt ends.

Feasibility is checked before any trial starts, ``max_concurrent_trials`` comes from the
capacity (Tune does not count Train's workers). A per-experiment registry actor records each
trial's worker placement groups (registered by rank 0 before training) and Train run
directories; a Tune callback removes them for every trial that stops running, even before its
first report (Ray issue #54305). A worker group that cannot start fails its trial after
``_CONTROLLER_FAILURE_LIMIT`` retries, each waiting ``RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S``
(default 60 s; set it in the environment of the Ray nodes, or of the driver for a local
Ray). Storage must be a local or shared filesystem path visible to all nodes.

This module is the driver side. The Ray backend's other modules: :mod:`.trial` (the
trial side: the function trainable and the Train worker loop), :mod:`.callbacks` (the Ray
classes: report forwarding, registry, mailbox), :mod:`.restore` (resume, stop
conditions), :mod:`.logs`, :mod:`.observers`, :mod:`.security`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from itwinai_ray.backends.ray import (
    callbacks as _ray_callbacks,
)
from itwinai_ray.backends.ray import (
    interrupts as _ray_interrupts,
)
from itwinai_ray.backends.ray import (
    logs as _ray_logs,
)
from itwinai_ray.backends.ray import (
    observers as _ray_observers,
)
from itwinai_ray.backends.ray import (
    output as _ray_output,
)
from itwinai_ray.backends.ray import (
    security as _ray_security,
)
from itwinai_ray.backends.ray.fail_fast import FailFastGuard
from itwinai_ray.backends.ray.restore import (
    StopWhen,
    _can_restore,
    _nothing_to_resume,
    _restorer,
    experiment_to_resume,
)
from itwinai_ray.backends.ray.trial import _trial_fn, _TrialSpec, tune_trial_context
from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning import resources as res
from itwinai_ray.tuning.context import WorkerContext, WorkerFn
from itwinai_ray.tuning.storage import check_shared_storage

if TYPE_CHECKING:  # pragma: no cover
    from ray.tune import ResultGrid

logger = logging.getLogger(__name__)

#: Where the Train runs of an experiment's trials write (``storage_path/name/_train_runs``).
_TRAIN_RUNS = "_train_runs"


def ensure_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    include_dashboard: bool | None = None,
    log_to_driver: bool = True,
) -> bool:
    """Connect to Ray, starting a local instance only when no cluster is named.

    The cluster is ``address`` or else ``$RAY_ADDRESS``. When neither is set a new local
    instance is started (never ``address="auto"``, which may join another user's cluster).
    This is the only ``ray.init`` in itwinai_ray.

    A local instance is secured for shared nodes (:mod:`.security`): token auth
    (``RAY_AUTH_MODE=token`` unless the environment sets it to ``disabled``) with a token
    file readable only by the user, the dashboard bound to 127.0.0.1, and Ray's session
    files under a fresh directory of mode 0700.

    ``log_to_driver=False`` keeps the workers' output out of this process's terminal (see
    :mod:`.output`: each trial writes its own log files instead).

    Returns:
        True when this call started Ray, so the caller knows to ``ray.shutdown()`` it.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
        return False
    temp_dir = _ray_security.secure_local_start()
    try:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                 include_dashboard=include_dashboard, dashboard_host="127.0.0.1",
                 log_to_driver=log_to_driver, _temp_dir=temp_dir)
    except BaseException:
        _ray_security.remove_temp_dir()
        raise
    return True


def shutdown(keep_logs_in: str | None = None) -> None:
    """Stop the Ray instance that :func:`ensure_ray` started (and remove its session files).

    ``keep_logs_in``: an experiment directory that keeps a copy of Ray's process logs
    (``logs/ray``), which would go with the session files."""
    import ray

    ray.shutdown()
    if keep_logs_in:
        for session in _ray_security.session_dirs():
            _ray_output.keep_session_logs(session, keep_logs_in)
    _ray_security.remove_temp_dir()


def cluster_capacity() -> dict[str, float]:
    """Total resources of the connected cluster (``ray.cluster_resources()``)."""
    import ray

    return {k: float(v) for k, v in ray.cluster_resources().items()}


def node_capacities() -> list[dict[str, float]]:
    """Total resources of each alive node."""
    import ray

    return [{k: float(v) for k, v in n.get("Resources", {}).items()}
            for n in ray.nodes() if n.get("Alive")]


# ----------------------------------------------------------------------------------------
# Driver side
# ----------------------------------------------------------------------------------------
def make_trainable(
    worker_fn: WorkerFn,
    *,
    num_workers: int,
    use_gpu: bool,
    resources_per_worker: Mapping[str, float] | None,
    storage_path: str,
    name: str,
    checkpoint_num_to_keep: int | None = None,
    trial_config_base: Mapping[str, Any] | None = None,
    registry: tuple[str, str | None] | None = None,
    required_metrics: tuple[str, ...] = (),
    worker_max_failures: int = 0,
    torch_config: Mapping[str, Any] | None = None,
    capture_output: bool = False,
) -> Any:
    """Build the Tune trainable (with its resources). Reuse it for ``Tuner.restore``.

    ``worker_fn`` is put in the object store once, here. ``registry`` is the (name, namespace)
    of :func:`run_experiment`'s placement-group registry actor; without one, the placement
    groups of killed trials are not tracked.
    """
    import ray
    import ray.tune

    from itwinai_ray import itwinai_compat

    per_worker = res.normalize_resources(resources_per_worker, use_gpu)
    spec = _TrialSpec(
        worker_fn_ref=ray.put(worker_fn), num_workers=num_workers, use_gpu=use_gpu,
        resources_per_worker=per_worker,
        train_storage_path=os.path.join(os.path.abspath(storage_path), name, _TRAIN_RUNS),
        trial_config_base=dict(trial_config_base or {}),
        # Train may delete checkpoint N only once Tune has copied it: Train runs at most one
        # report ahead of Tune (queue of 1), so keeping 2 more than Tune is enough.
        train_checkpoints_to_keep=(None if checkpoint_num_to_keep is None
                                   else checkpoint_num_to_keep + 2),
        registry=registry,
        required_metrics=tuple(required_metrics),
        worker_max_failures=worker_max_failures,
        torch_config=dict(torch_config or {}),
        itwinai_aliases=itwinai_compat.is_installed(),
        capture_output=capture_output,
    )
    if num_workers == 1:
        bundle = dict(per_worker)
    else:
        bundle = {"CPU": res.DEFAULT_TRIAL_OVERHEAD_CPU}
    trainable = ray.tune.with_parameters(_trial_fn, spec=spec)
    return ray.tune.with_resources(trainable, ray.tune.PlacementGroupFactory([bundle]))


def _warn_if_synchronous(scheduler: Any, concurrency: int, num_samples: int) -> None:
    """HyperBand (and BOHB's HyperBand) halves a bracket's trials together, at the moment the
    trials already in the bracket reach its milestone: a trial that starts later, because the
    cluster runs fewer trials at once than there are, joins a bracket already halved."""
    from ray.tune.schedulers import HyperBandScheduler

    if isinstance(scheduler, HyperBandScheduler) and concurrency < num_samples:
        logger.warning(
            "%s halves the trials of a bracket together, but only %d of the %d trials run at "
            "once: a trial that starts late joins a bracket already halved, so fewer trials "
            "are stopped early. Let all trials run at once (fewer CPUs per trial, or more "
            "nodes), or use scheduler 'asha', its asynchronous form.",
            type(scheduler).__name__, concurrency, num_samples)


def _primary_objective(metric: Any, mode: Any, scheduler: Any) -> tuple[str, str, bool]:
    """``(metric, mode, several)``: the one metric that ranks checkpoints and drives stops."""
    metrics = list(metric) if isinstance(metric, (list, tuple)) else [metric]
    modes = list(mode) if isinstance(mode, (list, tuple)) else [mode] * len(metrics)
    if not metrics or len(modes) != len(metrics) or any(m not in ("min", "max") for m in modes):
        raise ConfigurationError(f"mode is {mode!r}, but must be 'min' or 'max' (one per "
                                 f"metric of {metric!r}).")
    own = getattr(scheduler, "_metric", None)
    if len(metrics) > 1 and own in metrics:
        return own, modes[metrics.index(own)], True
    return metrics[0], modes[0], len(metrics) > 1


def _cap_limiter(search_alg: Any, concurrency: int) -> None:
    """Tune ignores ``max_concurrent_trials`` when the searcher is a ``ConcurrencyLimiter``
    (it does not count Train's workers either): cap the limiter at what the cluster runs."""
    from ray.tune.search import ConcurrencyLimiter

    if isinstance(search_alg, ConcurrencyLimiter) and search_alg.max_concurrent > concurrency:
        search_alg.max_concurrent = concurrency


def run_experiment(
    worker_fn: WorkerFn,
    param_space: dict[str, Any],
    *,
    num_workers: int,
    use_gpu: bool,
    resources_per_worker: Mapping[str, float] | None,
    metric: str | list[str],
    mode: str | list[str],
    num_samples: int,
    search_alg: Any = None,
    scheduler: Any = None,
    max_concurrent_trials: int | None = None,
    storage_path: str,
    name: str,
    checkpoint_num_to_keep: int | None = None,
    max_failures: int = 0,
    time_budget_s: float | None = None,
    trial_config_base: dict[str, Any] | None = None,
    max_iterations: int | None = None,
    progress: bool = True,
    terminal: Any = None,
    capture_output: bool = False,
    scope: str = "best",
    verbose: int = 0,
    mlflow: Any = True,
    resume: bool = False,
    fail_fast: bool | str = "auto",
    worker_max_failures: int = 0,
    stop: Mapping[str, float] | None = None,
    torch_config: Mapping[str, Any] | None = None,
    extend_to: int | None = None,
) -> ResultGrid:
    """Run an HPO experiment: ``num_samples`` trials of ``worker_fn`` on ``num_workers`` each.

    Ray must already be connected (:func:`ensure_ray`).

    Args:
        worker_fn: picklable ``worker_fn(config, ctx)``; ``config`` is ``trial_config_base``
            updated with the trial's sampled ``param_space`` values (shallow merge).
        param_space: Tune search space.
        num_workers: workers per trial; 1 runs the worker inside the trial (no worker group).
        use_gpu, resources_per_worker: per-worker resources (default 1 CPU, +1 GPU).
        metric, mode: what the searcher, scheduler and checkpoint ranking optimise. Lists
            (several metrics) go to the searcher only, which must already hold them (e.g.
            optuna); checkpoints are ranked on the scheduler's metric, else the first.
        search_alg, scheduler: built Ray Tune objects, or None (random search, FIFO).
        max_concurrent_trials: capped at what the cluster can run at once; None = that.
        storage_path, name: results go to ``storage_path/name``.
        checkpoint_num_to_keep: best checkpoints kept per trial (by ``metric``); None = all.
        max_failures: retries of a failed trial, resumed from its last checkpoint.
        time_budget_s: stop the whole experiment after this many seconds (results so far kept).
        max_iterations: reports a trial makes when it runs to the end (e.g. epochs); tells
            "stopped early" from "finished" in the progress view, MLflow and ``results``.
        progress: show the live progress view (rich in a terminal, plain lines otherwise).
        terminal: the stream the progress view writes to (default ``sys.stdout``).
        scope: what ranks a trial in the progress view (``best``, ``last``, ``last-N-avg``).
        capture_output: each trial process and Train worker writes its stdout/stderr to
            ``trial.log`` / ``worker-<rank>.log`` in its trial directory.
        verbose: Ray Tune's own output (``RunConfig.verbose``): 0 none (default), 1-3 more.
        mlflow: one parent run per experiment and a child run per trial: True (default:
            ``sqlite:///<storage_path>/<name>/mlflow.db``), False, or a mapping
            (``tracking_uri``, ``experiment_name``, ``tags``).
        resume: continue the experiment ``storage_path/name`` (after a crash or a time
            limit) with ``Tuner.restore(resume_errored=True)``: finished trials are kept,
            unfinished and errored ones resume from their last checkpoint, the searcher and
            ``num_samples`` come from the saved state. See :func:`experiment_to_resume`.
        fail_fast: stop the experiment early (results so far kept): ``"auto"`` when the
            first 2 trials to end both errored for good before reporting, with the same
            exception type and message (:mod:`.fail_fast`); True at the first trial error
            (Tune's own fail_fast); False never.
        worker_max_failures: in-place restarts of a trial's worker group (num_workers >= 2)
            from its last checkpoint after a worker error or death, before the trial fails.
        stop: per-trial stop conditions ``{key: threshold}`` (see :class:`StopWhen`).
        extend_to: with ``resume``: add trials until the experiment holds this many (a
            searcher that keeps its state, e.g. optuna; see ``extend_search``).

    Raises:
        ResourceError: before any trial starts, when one trial cannot fit the cluster.
        ConfigurationError: ``resume`` and nothing to resume at ``storage_path/name``.
    """
    import ray.tune

    # Several metrics (multi-objective): the searcher holds them; checkpoint ranking, stop
    # conditions and the progress view use one, the scheduler's if it has one, else the first.
    all_metrics = tuple(metric) if isinstance(metric, (list, tuple)) else (metric,)
    all_modes = tuple(mode) if isinstance(mode, (list, tuple)) else (mode,) * len(all_metrics)
    metric, mode, multi = _primary_objective(metric, mode, scheduler)
    if num_samples < 1:
        raise ConfigurationError(f"num_samples is {num_samples}, but must be >= 1.")
    experiment_dir = os.path.join(os.path.abspath(storage_path), name)
    if resume and not _can_restore(experiment_dir):
        raise ConfigurationError(_nothing_to_resume(experiment_dir))
    need = res.trial_need(num_workers, resources_per_worker, use_gpu)
    capacity = cluster_capacity()
    res.check_feasible(need, capacity, num_workers=num_workers,
                       resources_per_worker=resources_per_worker)
    res.check_worker_fits_a_node(res.normalize_resources(resources_per_worker, use_gpu),
                                 node_capacities())
    check_shared_storage(storage_path, num_nodes=len(node_capacities()))  # multi-node: shared
    concurrency = res.max_concurrent_trials(need, capacity, max_concurrent_trials)
    logger.info("One trial needs %s; running up to %d trials at once.", need, concurrency)
    _warn_if_synchronous(scheduler, concurrency, num_samples)

    import ray

    _, release_cls, registry_cls = _ray_callbacks.ray_classes()
    registry = (f"{_ray_callbacks.REGISTRY_PREFIX}{name}_{uuid.uuid4().hex[:8]}",
                ray.get_runtime_context().namespace)
    registry_actor = registry_cls.options(name=registry[0], namespace=registry[1]).remote()
    observers, error = None, None
    try:
        observers = _ray_observers.start(  # progress view, MLflow runs, itwinai_ray.json
            os.path.join(os.path.abspath(storage_path), name), name, metric=metric, mode=mode,
            num_samples=num_samples, time_budget_s=time_budget_s, param_keys=list(param_space),
            max_iterations=max_iterations, progress=progress, mlflow=mlflow,
            terminal=terminal, scope=scope, param_space=param_space,
            objectives=list(zip(all_metrics, all_modes)))  # and the trial journal
        trainable = make_trainable(
            worker_fn, num_workers=num_workers, use_gpu=use_gpu,
            resources_per_worker=resources_per_worker, storage_path=storage_path, name=name,
            checkpoint_num_to_keep=checkpoint_num_to_keep, trial_config_base=trial_config_base,
            registry=registry, worker_max_failures=worker_max_failures,
            required_metrics=all_metrics + StopWhen.reported_keys(stop),
            torch_config=torch_config, capture_output=capture_output)
        # Tune refuses metric/mode here when the scheduler already has its own, and takes one
        # metric only: several are the searcher's business.
        scheduler_has_metric = getattr(scheduler, "_metric", None) is not None or multi
        _cap_limiter(search_alg, concurrency)
        make_tuner = _restorer(experiment_dir, extend_to) if resume else ray.tune.Tuner
        fail_fast_guard = FailFastGuard.build(fail_fast)  # auto: a Tune callback + stopper
        tuner = make_tuner(
            trainable,
            param_space=param_space,
            tune_config=ray.tune.TuneConfig(
                metric=None if scheduler_has_metric else metric,
                mode=None if scheduler_has_metric else mode,
                num_samples=num_samples, search_alg=search_alg, scheduler=scheduler,
                max_concurrent_trials=concurrency, time_budget_s=time_budget_s,
            # Fast path: a trial process serves the next trial with torch already imported
            # (~2.5 s per trial here). Not for worker groups: Train state lives in the actor.
            reuse_actors=num_workers == 1),
            run_config=ray.tune.RunConfig(
                name=name, storage_path=os.path.abspath(storage_path),
                callbacks=[release_cls(*registry), _ray_logs.keep_logs_callback(),
                           _ray_interrupts.stop_if_requested_callback(),
                           *observers.callbacks, *fail_fast_guard.callbacks],
                verbose=verbose,
                failure_config=ray.tune.FailureConfig(max_failures=max_failures,
                                                      fail_fast=fail_fast is True),
                stop=fail_fast_guard.stop(StopWhen.build(stop, metric, mode)),
                checkpoint_config=ray.tune.CheckpointConfig(
                    num_to_keep=checkpoint_num_to_keep,
                    checkpoint_score_attribute=metric if checkpoint_num_to_keep else None,
                    checkpoint_score_order=mode),
            ),
        )
        return tuner.fit()
    except BaseException as exc:
        error = exc
        raise
    finally:  # also on Ctrl-C or a Tune error: nothing may outlive the experiment
        if observers is not None:
            observers.close(error)
        _ray_callbacks.release_all(*registry)
        ray.kill(registry_actor, no_restart=True)
        _ray_callbacks.sweep_train_runs(os.path.join(experiment_dir, _TRAIN_RUNS))


__all__ = ["StopWhen", "WorkerContext", "cluster_capacity", "ensure_ray",
           "experiment_to_resume", "make_trainable", "node_capacities", "run_experiment",
           "shutdown", "tune_trial_context"]
