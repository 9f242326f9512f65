"""The driver side of the Ray backend: ``ray.init``, the cluster's capacity, and the Tuner of
one experiment (Ray Train V2 and Ray Tune).

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
trial side: the function trainable and the Train worker loop), :mod:`.registry`,
:mod:`.forwarding`, :mod:`.release` (the registry actor, report forwarding, the mailbox,
releasing a stopped trial's leftovers), :mod:`.restore` (resume, stop
conditions), :mod:`.logs`, :mod:`.observers`, :mod:`.security`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from itwinai_ray.backends.ray import interrupts, logs, observers, output, security, walltime
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
from itwinai_ray.tuning.experiment_spec import ExperimentSpec
from itwinai_ray.tuning.objective import TunedMetrics
from itwinai_ray.tuning.storage import check_shared_storage
from itwinai_ray.tuning.walltime import STATE_FILE as WALLTIME_FILE

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
    temp_dir = security.secure_local_start()
    try:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                 include_dashboard=include_dashboard, dashboard_host="127.0.0.1",
                 log_to_driver=log_to_driver, _temp_dir=temp_dir)
    except BaseException:
        security.remove_temp_dir()
        raise
    return True


def shutdown(keep_logs_in: str | None = None) -> None:
    """Stop the Ray instance that :func:`ensure_ray` started (and remove its session files).

    ``keep_logs_in``: an experiment directory that keeps a copy of Ray's process logs
    (``logs/ray``), which would go with the session files."""
    import ray

    ray.shutdown()
    if keep_logs_in:
        for session in security.session_dirs():
            output.keep_session_logs(session, keep_logs_in)
    security.remove_temp_dir()


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
    walltime_path: str | None = None,
    pooled: bool = False,
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
        walltime_path=walltime_path,
        pooled=pooled and num_workers > 1,
    )
    if num_workers == 1:
        bundles = [dict(per_worker)]
    elif spec.pooled:  # the trial, then its workers' bundles (reused with the trial process)
        bundles = [{"CPU": res.DEFAULT_TRIAL_OVERHEAD_CPU}] + [dict(per_worker)] * num_workers
    else:  # Train V2 makes the workers' placement group
        bundles = [{"CPU": res.DEFAULT_TRIAL_OVERHEAD_CPU}]
    trainable = ray.tune.with_parameters(_trial_fn, spec=spec)
    return ray.tune.with_resources(trainable, ray.tune.PlacementGroupFactory(bundles))


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
    tuned = TunedMetrics.parse(metric, mode)
    if not tuned.metrics or len(tuned.modes) != len(tuned.metrics) or any(
            m not in ("min", "max") for m in tuned.modes):
        raise ConfigurationError(f"mode is {mode!r}, but must be 'min' or 'max' (one per "
                                 f"metric of {metric!r}).")
    own = getattr(scheduler, "metric", None)  # TrialScheduler.metric (None: not set)
    return (*tuned.primary(own), tuned.several)


def _cap_limiter(search_alg: Any, concurrency: int) -> None:
    """Tune ignores ``max_concurrent_trials`` when the searcher is a ``ConcurrencyLimiter``
    (it does not count Train's workers either): cap the limiter at what the cluster runs."""
    from ray.tune.search import ConcurrencyLimiter

    if isinstance(search_alg, ConcurrencyLimiter) and search_alg.max_concurrent > concurrency:
        search_alg.set_max_concurrency(concurrency)


def run_experiment(worker_fn: WorkerFn, param_space: dict[str, Any],
                   **options: Any) -> ResultGrid:
    """Run an HPO experiment; ``options`` are the other fields of :class:`ExperimentSpec`
    (``search_alg``, ``scheduler``: neutral choices or Ray objects)."""
    return run(ExperimentSpec(worker_fn=worker_fn, param_space=param_space, **options))


@dataclass(frozen=True)
class _Objective:
    """The one metric that ranks checkpoints and drives stops, and all the tuned ones."""

    metric: str
    mode: str
    several: bool
    all_metrics: tuple[str, ...]
    all_modes: tuple[str, ...]

    @classmethod
    def of(cls, spec: ExperimentSpec) -> _Objective:
        # Several metrics (multi-objective): the searcher holds them; checkpoint ranking, stop
        # conditions and the progress view use one, the scheduler's if it has one, else the
        # first.
        tuned = TunedMetrics.parse(spec.metric, spec.mode)
        one, one_mode, several = _primary_objective(spec.metric, spec.mode, spec.scheduler)
        return cls(one, one_mode, several, tuned.metrics, tuned.modes)


def _check(spec: ExperimentSpec, experiment_dir: str) -> int:
    """Checks before any trial starts; returns how many trials run at once."""
    if spec.num_samples < 1:
        raise ConfigurationError(f"num_samples is {spec.num_samples}, but must be >= 1.")
    if spec.resume and not _can_restore(experiment_dir):
        raise ConfigurationError(_nothing_to_resume(experiment_dir))
    need = res.trial_need(spec.num_workers, spec.resources_per_worker, spec.use_gpu)
    capacity = cluster_capacity()
    res.check_feasible(need, capacity, num_workers=spec.num_workers,
                       resources_per_worker=spec.resources_per_worker)
    res.check_worker_fits_a_node(
        res.normalize_resources(spec.resources_per_worker, spec.use_gpu), node_capacities())
    check_shared_storage(spec.storage_path, num_nodes=len(node_capacities()))  # multi-node
    concurrency = res.max_concurrent_trials(need, capacity, spec.max_concurrent_trials)
    logger.info("One trial needs %s; running up to %d trials at once.", need, concurrency)
    _warn_if_synchronous(spec.scheduler, concurrency, spec.num_samples)
    return concurrency


def run(spec: ExperimentSpec) -> ResultGrid:
    """Run the experiment ``spec``. Ray must already be connected (:func:`ensure_ray`).

    Raises:
        ResourceError: before any trial starts, when one trial cannot fit the cluster.
        ConfigurationError: ``resume`` and nothing to resume at ``storage_path/name``.
    """
    import ray

    from itwinai_ray.backends.ray.algorithms import assemble

    spec = assemble(spec)  # the neutral space, searcher and scheduler as Ray objects
    objective = _Objective.of(spec)
    experiment_dir = os.path.join(os.path.abspath(spec.storage_path), spec.name)
    concurrency = _check(spec, experiment_dir)
    from itwinai_ray.backends.ray import registry as reg
    from itwinai_ray.backends.ray.release import ReleaseTrialResources

    registry = (f"{reg.REGISTRY_PREFIX}{spec.name}_{uuid.uuid4().hex[:8]}",
                ray.get_runtime_context().namespace)
    registry_actor = reg.Registry.options(name=registry[0], namespace=registry[1]).remote()
    watch, error = None, None
    try:
        watch = observers.start(  # progress view, MLflow runs, itwinai_ray.json
            experiment_dir, spec.name, metric=objective.metric, mode=objective.mode,
            num_samples=spec.num_samples, time_budget_s=spec.time_budget_s,
            param_keys=list(spec.param_space), max_iterations=spec.max_iterations,
            progress=spec.progress, mlflow=spec.mlflow, terminal=spec.terminal,
            scope=spec.scope, param_space=spec.param_space,
            objectives=list(zip(objective.all_metrics, objective.all_modes)))  # and journal
        callbacks = [ReleaseTrialResources(*registry), logs.keep_logs_callback(),
                     interrupts.stop_if_requested_callback(), *watch.callbacks]
        if spec.stop_at is not None:  # a time limit: trials that cannot report wait
            callbacks.append(walltime.walltime_callback(
                os.path.join(experiment_dir, WALLTIME_FILE), spec.stop_at))
        return _tuner(spec, objective, experiment_dir, concurrency, registry, callbacks).fit()
    except BaseException as exc:
        error = exc
        raise
    finally:  # also on Ctrl-C or a Tune error: nothing may outlive the experiment
        if watch is not None:
            watch.close(error)
        reg.release_all(*registry)
        ray.kill(registry_actor, no_restart=True)
        reg.sweep_train_runs(os.path.join(experiment_dir, _TRAIN_RUNS))


def _reuse_actors(spec: ExperimentSpec) -> bool:
    """Whether a trial process serves the next trial. By default only on the fast path
    (``torch`` already imported: ~2.5 s per trial here); worker-group trials then run on a
    Train V2 run each. ``reuse_actors: true`` with ``num_workers >= 2``: the pooled path
    (:mod:`.pool`), whose trial processes keep their workers too."""
    return spec.num_workers == 1 if spec.reuse_actors is None else bool(spec.reuse_actors)


def _tuner(spec: ExperimentSpec, objective: _Objective, experiment_dir: str, concurrency: int,
           registry: tuple[str, str | None], callbacks: list[Any]) -> Any:
    """The Tuner (or the restored one) of the experiment."""
    import ray.tune

    from itwinai_ray.backends.ray.hyperband import without_finished_bracket_hang

    trainable = make_trainable(
        spec.worker_fn, num_workers=spec.num_workers, use_gpu=spec.use_gpu,
        resources_per_worker=spec.resources_per_worker, storage_path=spec.storage_path,
        name=spec.name, checkpoint_num_to_keep=spec.checkpoint_num_to_keep,
        trial_config_base=spec.trial_config_base, registry=registry,
        worker_max_failures=spec.worker_max_failures,
        required_metrics=objective.all_metrics + StopWhen.reported_keys(spec.stop),
        torch_config=spec.torch_config, capture_output=spec.capture_output,
        walltime_path=(os.path.join(experiment_dir, WALLTIME_FILE)
                       if spec.stop_at is not None else None),
        pooled=_reuse_actors(spec))
    # Tune refuses metric/mode here when the scheduler already has its own, and takes one
    # metric only: several are the searcher's business.
    scheduler_has_metric = (getattr(spec.scheduler, "metric", None) is not None
                            or objective.several)
    _cap_limiter(spec.search_alg, concurrency)
    make_tuner = _restorer(experiment_dir, spec.extend_to) if spec.resume else ray.tune.Tuner
    fail_fast_guard = FailFastGuard.build(spec.fail_fast)  # auto: a Tune callback + stopper
    checkpoints = spec.checkpoint_num_to_keep
    return make_tuner(
        trainable,
        param_space=spec.param_space,
        tune_config=ray.tune.TuneConfig(
            metric=None if scheduler_has_metric else objective.metric,
            mode=None if scheduler_has_metric else objective.mode,
            num_samples=spec.num_samples, search_alg=spec.search_alg,
            scheduler=without_finished_bracket_hang(spec.scheduler),
            max_concurrent_trials=concurrency, time_budget_s=spec.time_budget_s,
            reuse_actors=_reuse_actors(spec)),
        run_config=ray.tune.RunConfig(
            name=spec.name, storage_path=os.path.abspath(spec.storage_path),
            callbacks=[*callbacks, *fail_fast_guard.callbacks], verbose=spec.verbose,
            failure_config=ray.tune.FailureConfig(max_failures=spec.max_failures,
                                                  fail_fast=spec.fail_fast is True),
            stop=fail_fast_guard.stop(StopWhen.build(spec.stop, objective.metric,
                                                     objective.mode)),
            checkpoint_config=ray.tune.CheckpointConfig(
                num_to_keep=checkpoints,
                checkpoint_score_attribute=objective.metric if checkpoints else None,
                checkpoint_score_order=objective.mode),
        ),
    )


__all__ = ["StopWhen", "WorkerContext", "cluster_capacity", "ensure_ray",
           "experiment_to_resume", "make_trainable", "node_capacities", "run_experiment",
           "shutdown", "tune_trial_context"]
