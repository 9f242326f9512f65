"""The only module that talks to Ray Train (V2) and Ray Tune.

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
Ray). Storage must be a local or shared filesystem path visible to all nodes. The Ray classes
live in :mod:`itwinai_ray.tuning._ray_callbacks`.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning import _ray_callbacks, _ray_logs, _ray_observers, _ray_security
from itwinai_ray.tuning import resources as res
from itwinai_ray.tuning.context import WorkerContext, WorkerFn
from itwinai_ray.tuning.storage import check_shared_storage

if TYPE_CHECKING:  # pragma: no cover
    from ray.tune import ResultGrid

logger = logging.getLogger(__name__)

_QUEUE_POLL_S = 0.2
_JOIN_TIMEOUT_S = 10.0
#: How often Train V2's controller polls its workers (``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``,
#: default 2 s). Each worker holds one report until the poll takes it, so the default caps a
#: trial at one epoch per 2 s. A value set in the environment wins; missed polls only fail a
#: worker after RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S (10 min), so a short poll is safe.
_TRAIN_POLL_ENV, _TRAIN_POLL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25"
#: Worker-group start failures (a controller error) Train retries before the trial errors.
_CONTROLLER_FAILURE_LIMIT = 2

def ensure_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    include_dashboard: bool | None = None,
) -> bool:
    """Connect to Ray, starting a local instance only when no cluster is named.

    The cluster is ``address`` or else ``$RAY_ADDRESS``. When neither is set a new local
    instance is started (never ``address="auto"``, which may join another user's cluster).
    This is the only ``ray.init`` in itwinai_ray.

    A local instance is secured for shared nodes (:mod:`._ray_security`): token auth
    (``RAY_AUTH_MODE=token`` unless the environment sets it to ``disabled``) with a token
    file readable only by the user, the dashboard bound to 127.0.0.1, and Ray's session
    files under a fresh directory of mode 0700.

    Returns:
        True when this call started Ray, so the caller knows to ``ray.shutdown()`` it.
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address)
        return False
    temp_dir = _ray_security.secure_local_start()
    try:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                 include_dashboard=include_dashboard, dashboard_host="127.0.0.1",
                 _temp_dir=temp_dir)
    except BaseException:
        _ray_security.remove_temp_dir()
        raise
    return True


def shutdown() -> None:
    """Stop the Ray instance that :func:`ensure_ray` started (and remove its session files)."""
    import ray

    ray.shutdown()
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


@dataclass(frozen=True)
class _TrialSpec:
    """Everything a trial needs besides its sampled config.

    ``worker_fn`` (which may hold the trainer and its datasets) is a Ray ``ObjectRef``: it is
    put in the object store once per experiment and only the processes that run it fetch it.
    """

    worker_fn_ref: Any
    num_workers: int
    use_gpu: bool
    resources_per_worker: dict[str, float]
    train_storage_path: str
    trial_config_base: dict[str, Any]
    train_checkpoints_to_keep: int | None
    registry: tuple[str, str | None] | None = None  # (actor name, namespace)
    #: The tuned metrics: a report without them fails the trial with a clear message.
    required_metrics: tuple[str, ...] = ()
    #: Train restarts of the worker group (from its last checkpoint) before the trial fails.
    worker_max_failures: int = 0


# ----------------------------------------------------------------------------------------
# Trial side
# ----------------------------------------------------------------------------------------
def _trial_fn(config: dict[str, Any], spec: _TrialSpec) -> None:
    """Tune function trainable: one trial."""
    import ray.tune

    trial_config = {**spec.trial_config_base, **config}
    tune_ckpt = ray.tune.get_checkpoint()
    resume_dir = tune_ckpt.path if tune_ckpt is not None else None
    tctx = ray.tune.get_context()
    if spec.num_workers == 1:
        _run_in_trial(trial_config, spec, tctx.get_trial_id(), tctx.get_trial_dir(), resume_dir)
    else:
        _run_worker_group(trial_config, spec, tctx.get_trial_id(), tctx.get_trial_dir(),
                          resume_dir)


def _run_in_trial(config: dict[str, Any], spec: _TrialSpec, trial_id: str, trial_dir: str,
                  resume_dir: str | None) -> None:
    """Fast path: the trial process is the only worker."""
    import ray
    import ray.tune

    ctx = _tune_context(trial_id, trial_dir, resume_dir, spec.required_metrics)
    ray.get(spec.worker_fn_ref)(config, ctx)


def _tune_report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
    import ray.tune

    ckpt = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    ray.tune.report(metrics, checkpoint=ckpt)


def _tune_context(trial_id: str, trial_dir: str, resume_dir: str | None,
                  required_metrics: tuple[str, ...] = ()) -> WorkerContext:
    """The context of a worker that is the trial process itself (reports to Tune)."""
    return WorkerContext(world_size=1, rank=0, local_rank=0, local_world_size=1, node_rank=0,
                         trial_id=trial_id, trial_dir=trial_dir,
                         resume_checkpoint_dir=resume_dir, _report_fn=_tune_report,
                         required_metrics=required_metrics)


def tune_trial_context() -> WorkerContext | None:
    """The context of the current Ray Tune function trial, or None outside one.

    Used when user code runs a trainer inside its own Tune trainable (the run_trial
    template): the trainer then reports to Tune and resumes from Tune's checkpoint.
    """
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    if not _in_tune_session():
        return None
    import ray.tune

    tctx = ray.tune.get_context()
    ckpt = ray.tune.get_checkpoint()
    return _tune_context(tctx.get_trial_id(), tctx.get_trial_dir(),
                         ckpt.path if ckpt is not None else None)


def _build_trainer(config: dict[str, Any], spec: _TrialSpec, trial_id: str, trial_dir: str,
                   resume_dir: str | None, run_name: str, reports: Any) -> Any:
    """The Train V2 ``TorchTrainer`` of one trial attempt (``reports``: the forwarding queue)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    forward_cls, _, _ = _ray_callbacks.ray_classes()
    return TorchTrainer(
        train_loop_per_worker=_train_loop,
        # The spec is small: worker_fn travels as an ObjectRef, fetched by each worker.
        train_loop_config={"spec": spec, "config": config, "trial_id": trial_id,
                           "trial_dir": trial_dir, "resume_dir": resume_dir},
        scaling_config=ray.train.ScalingConfig(
            num_workers=spec.num_workers, use_gpu=spec.use_gpu,
            resources_per_worker=dict(spec.resources_per_worker)),
        run_config=ray.train.RunConfig(
            name=run_name, storage_path=spec.train_storage_path,
            callbacks=[forward_cls(reports)],
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=spec.train_checkpoints_to_keep),
            # A worker error or death restarts the group in place from Train's latest
            # checkpoint worker_max_failures times; then the trial fails and Tune's
            # max_failures decides. A worker group that cannot start (each attempt waits
            # RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S) would be retried forever with the
            # default controller_failure_limit=-1.
            failure_config=ray.train.FailureConfig(
                max_failures=spec.worker_max_failures,
                controller_failure_limit=_CONTROLLER_FAILURE_LIMIT)),
    )


def _run_worker_group(config: dict[str, Any], spec: _TrialSpec, trial_id: str,
                      trial_dir: str, resume_dir: str | None) -> None:
    """Run the trial on a Ray Train V2 worker group and forward its reports to Tune.

    Tune copies each re-reported checkpoint into the trial's own directory
    (``StorageContext.persist_current_checkpoint``), so the Train run directory is deleted
    once ``fit()`` has returned and every report has been re-reported.
    """
    import queue as std_queue

    import ray.tune
    from ray.util.queue import Empty, Queue

    # A fresh Train run per attempt: resuming comes from Tune's checkpoint (retry, restore,
    # PBT exploit), never from an older Train run of the same trial.
    run_name = f"{trial_id}_{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:6]}"
    # The report hand-over lives in the experiment's registry actor: no process per trial.
    reports = (_ray_callbacks.Mailbox(*spec.registry, run_name) if spec.registry
               else Queue(maxsize=1, actor_options={"num_cpus": 0}))
    run_dir = os.path.join(spec.train_storage_path, run_name)
    if spec.registry:  # deleted by the Tune callback if this trial is killed
        _ray_callbacks.registry_notify(*spec.registry, "register", trial_id, None, run_dir)
    # Read in this (trial) process when fit() starts the controller, which gets it as an env var.
    os.environ.setdefault(_TRAIN_POLL_ENV, _TRAIN_POLL_S)
    trainer = _build_trainer(config, spec, trial_id, trial_dir, resume_dir, run_name, reports)
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the trial thread
            outcome["error"] = exc

    thread = threading.Thread(target=fit, name=f"fit-{trial_id}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                metrics, ckpt = reports.get(block=True, timeout=_QUEUE_POLL_S)
            except (Empty, std_queue.Empty):
                if thread.is_alive() or not reports.empty():
                    continue
                break
            tune_ckpt = (ray.tune.Checkpoint(path=ckpt.path, filesystem=ckpt.filesystem)
                         if ckpt is not None else None)
            ray.tune.report(metrics, checkpoint=tune_ckpt)  # copies the checkpoint
    finally:
        # Also on an error here: a controller blocked in put() then fails instead of hanging.
        reports.shutdown(force=thread.is_alive())
        thread.join(timeout=_JOIN_TIMEOUT_S)
        shutil.rmtree(run_dir, ignore_errors=True)
    if "error" in outcome:
        raise outcome["error"]


def _train_loop(loop_config: dict[str, Any]) -> None:
    """Per-worker entry point of the Train worker group."""
    import ray
    import ray.train
    import ray.util

    spec: _TrialSpec = loop_config["spec"]
    tctx = ray.train.get_context()
    rank = tctx.get_world_rank()
    pg = ray.util.get_current_placement_group()
    if rank == 0 and pg is not None and spec.registry:  # before training: see ray_classes
        _ray_callbacks.registry_notify(*spec.registry, "register", loop_config["trial_id"],
                                       pg.id.hex())
    train_ckpt = ray.train.get_checkpoint()  # set after a worker-group restart
    resume = train_ckpt.path if train_ckpt is not None else loop_config["resume_dir"]

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ckpt)

    ctx = WorkerContext(
        world_size=tctx.get_world_size(), rank=rank, local_rank=tctx.get_local_rank(),
        local_world_size=tctx.get_local_world_size(), node_rank=tctx.get_node_rank(),
        trial_id=loop_config["trial_id"], trial_dir=loop_config["trial_dir"],
        resume_checkpoint_dir=resume, _report_fn=report,
        required_metrics=spec.required_metrics)
    ray.get(spec.worker_fn_ref)(loop_config["config"], ctx)


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
) -> Any:
    """Build the Tune trainable (with its resources). Reuse it for ``Tuner.restore``.

    ``worker_fn`` is put in the object store once, here. ``registry`` is the (name, namespace)
    of :func:`run_experiment`'s placement-group registry actor; without one, the placement
    groups of killed trials are not tracked.
    """
    import ray
    import ray.tune

    per_worker = res.normalize_resources(resources_per_worker, use_gpu)
    spec = _TrialSpec(
        worker_fn_ref=ray.put(worker_fn), num_workers=num_workers, use_gpu=use_gpu,
        resources_per_worker=per_worker,
        train_storage_path=os.path.join(os.path.abspath(storage_path), name, "_train_runs"),
        trial_config_base=dict(trial_config_base or {}),
        # Train may delete checkpoint N only once Tune has copied it: Train runs at most one
        # report ahead of Tune (queue of 1), so keeping 2 more than Tune is enough.
        train_checkpoints_to_keep=(None if checkpoint_num_to_keep is None
                                   else checkpoint_num_to_keep + 2),
        registry=registry,
        required_metrics=tuple(required_metrics),
        worker_max_failures=worker_max_failures,
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
    verbose: int = 0,
    mlflow: Any = True,
    resume: bool = False,
    fail_fast: bool = False,
    worker_max_failures: int = 0,
    stop: Mapping[str, float] | None = None,
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
        verbose: Ray Tune's own output (``RunConfig.verbose``): 0 none (default), 1-3 more.
        mlflow: one parent run per experiment and a child run per trial: True (default:
            ``sqlite:///<storage_path>/<name>/mlflow.db``), False, or a mapping
            (``tracking_uri``, ``experiment_name``, ``tags``).
        resume: continue the experiment ``storage_path/name`` (after a crash or a time
            limit) with ``Tuner.restore(resume_errored=True)``: finished trials are kept,
            unfinished and errored ones resume from their last checkpoint, the searcher and
            ``num_samples`` come from the saved state. See :func:`experiment_to_resume`.
        fail_fast: stop the experiment at the first trial error (results so far kept).
        worker_max_failures: in-place restarts of a trial's worker group (num_workers >= 2)
            from its last checkpoint after a worker error or death, before the trial fails.
        stop: per-trial stop conditions ``{key: threshold}`` (see :class:`StopWhen`).

    Raises:
        ResourceError: before any trial starts, when one trial cannot fit the cluster.
        ConfigurationError: ``resume`` and nothing to resume at ``storage_path/name``.
    """
    import ray.tune

    # Several metrics (multi-objective): the searcher holds them; checkpoint ranking, stop
    # conditions and the progress view use one, the scheduler's if it has one, else the first.
    all_metrics = tuple(metric) if isinstance(metric, (list, tuple)) else (metric,)
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
            max_iterations=max_iterations, progress=progress, mlflow=mlflow)
        trainable = make_trainable(
            worker_fn, num_workers=num_workers, use_gpu=use_gpu,
            resources_per_worker=resources_per_worker, storage_path=storage_path, name=name,
            checkpoint_num_to_keep=checkpoint_num_to_keep, trial_config_base=trial_config_base,
            registry=registry, worker_max_failures=worker_max_failures,
            required_metrics=all_metrics + StopWhen.reported_keys(stop))
        # Tune refuses metric/mode here when the scheduler already has its own, and takes one
        # metric only: several are the searcher's business.
        scheduler_has_metric = getattr(scheduler, "_metric", None) is not None or multi
        _cap_limiter(search_alg, concurrency)
        make_tuner = _restorer(experiment_dir) if resume else ray.tune.Tuner
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
                           *observers.callbacks], verbose=verbose,
                failure_config=ray.tune.FailureConfig(max_failures=max_failures,
                                                      fail_fast=fail_fast),
                stop=StopWhen.build(stop, metric, mode),
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


# ----------------------------------------------------------------------------------------
# Resume and stop conditions
# ----------------------------------------------------------------------------------------
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


__all__ = ["StopWhen", "WorkerContext", "cluster_capacity", "ensure_ray",
           "experiment_to_resume", "make_trainable", "node_capacities", "run_experiment",
           "shutdown"]
