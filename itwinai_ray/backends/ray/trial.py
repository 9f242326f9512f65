"""Trial side of the Ray backend: the Tune function trainable and the Train V2 worker loop.

``_trial_fn`` runs one trial: in the trial process (``num_workers == 1``, the fast path) or
on a Ray Train V2 worker group whose reports reach Tune through a mailbox
(:mod:`.registry`, :mod:`.forwarding`). See :mod:`.driver` for the whole picture; only the Ray
backend's modules import Ray Train/Tune.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from itwinai_ray.backends.ray import _private, output
from itwinai_ray.backends.ray.trial_spec import _captured, _TrialSpec, _worker_fn
from itwinai_ray.tuning.context import WorkerContext
from itwinai_ray.tuning.walltime import WalltimeState

logger = logging.getLogger(__name__)

_QUEUE_POLL_S = 0.2
_JOIN_TIMEOUT_S = 10.0
#: How long a stopped trial waits for its Train run to stop in order (Tune's stop waits).
_ORDERLY_STOP_S = 20.0
#: How often Train V2's controller polls its workers (``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``,
#: default 2 s). Each worker holds one report until the poll takes it, so the default caps a
#: trial at one epoch per 2 s. A value set in the environment wins; missed polls only fail a
#: worker after RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S (10 min), so a short poll is safe.
_TRAIN_POLL_ENV, _TRAIN_POLL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25"
#: How long a failing worker waits for its reports to reach the trial (the other ranks'
#: reports of the same round: see registry.Mailbox.wait_forwarded).
_FORWARD_WAIT_S = 15.0
#: Worker-group start failures (a controller error) Train retries before the trial errors.
_CONTROLLER_FAILURE_LIMIT = 2


# ----------------------------------------------------------------------------------------
# Trial side
# ----------------------------------------------------------------------------------------
class _OrderlyStop:
    """Mixed into the trial's ``FunctionTrainable`` (Tune's ``__mixins__`` hook).

    Tune stops a trial (scheduler, PBT pause, stop condition, experiment end) by calling
    ``stop()`` on its actor, then lets the actor go. Left alone, the Train run of a worker
    group trial dies with the actor and its workers fail their health checks (worker-group
    errors in Ray's logs, for a trial stopped on purpose). Here ``cleanup`` asks the trial's
    forwarding loop to stop the run in order (:func:`_stop_train_run`) and waits for it.
    """

    @dataclass
    class Signal:
        requested: threading.Event = field(default_factory=threading.Event)
        done: threading.Event = field(default_factory=threading.Event)

    def cleanup(self) -> None:
        stop = _STOPS.get(getattr(self, "trial_id", None) or "")
        if stop is not None:
            stop.requested.set()
        super().cleanup()  # type: ignore[misc]
        if stop is not None and not stop.done.wait(_ORDERLY_STOP_S + _JOIN_TIMEOUT_S):
            logger.warning("Trial %s: its Train run did not stop within %.0f s.",
                           getattr(self, "trial_id", "?"), _ORDERLY_STOP_S)


#: The orderly stop of each Train run this trial process runs (trial id -> signal).
_STOPS: dict[str, _OrderlyStop.Signal] = {}


def _trial_fn(config: dict[str, Any], spec: _TrialSpec) -> None:
    """Tune function trainable: one trial (with :class:`_OrderlyStop` mixed in)."""
    import ray.tune

    trial_config = {**spec.trial_config_base, **config}
    tune_ckpt = ray.tune.get_checkpoint()
    resume_dir = tune_ckpt.path if tune_ckpt is not None else None
    tctx = ray.tune.get_context()
    trial_dir = _private.trial_storage_dir(tctx.get_trial_dir())  # also in a reused process
    # The fast path's trial process is rank 0; a worker group's trial process only forwards.
    log_name = (output.WORKER_LOG.format(rank=0) if spec.num_workers == 1
                else output.TRIAL_LOG)
    with _captured(spec, os.path.join(trial_dir, log_name)):
        if _held_until_stopped(spec, tctx.get_trial_id()):
            return
        if spec.num_workers == 1:
            _run_in_trial(trial_config, spec, tctx.get_trial_id(), trial_dir, resume_dir)
        elif spec.pooled:
            _run_pooled(trial_config, spec, tctx.get_trial_id(), trial_dir, resume_dir)
        else:
            _run_worker_group(trial_config, spec, tctx.get_trial_id(), trial_dir, resume_dir)


def _held_until_stopped(spec: _TrialSpec, trial_id: str) -> bool:
    """Wait, without starting, when this trial's first report is not expected before the
    stop signal (:mod:`itwinai_ray.tuning.walltime`). True: Tune stopped the trial meanwhile (the signal came)."""
    if spec.walltime_path is None:
        return False
    state = WalltimeState.load(spec.walltime_path)
    reason = state.hold_reason(time.time())
    if reason is None:
        return False
    print(f"Trial {trial_id} waits: {reason}.", flush=True)
    stop = _STOPS[trial_id] = _OrderlyStop.Signal()  # set by Tune's stop (see cleanup)
    try:
        stopped = stop.requested.wait(state.hold_s(time.time()))
    finally:
        _STOPS.pop(trial_id, None)
        stop.done.set()
    if not stopped:
        print(f"Trial {trial_id}: no stop signal came; starting.", flush=True)
    return stopped


def _run_in_trial(config: dict[str, Any], spec: _TrialSpec, trial_id: str, trial_dir: str,
                  resume_dir: str | None) -> None:
    """Fast path: the trial process is the only worker."""

    ctx = _tune_context(trial_id, trial_dir, resume_dir, spec.required_metrics)
    _worker_fn(spec)(config, ctx)


def _run_pooled(config: dict[str, Any], spec: _TrialSpec, trial_id: str, trial_dir: str,
                resume_dir: str | None) -> None:
    """On this trial process's reusable workers (:mod:`.pool`), with the orderly stop."""
    from itwinai_ray.backends.ray.pool import run_pooled

    stop = _STOPS[trial_id] = _OrderlyStop.Signal()
    try:
        run_pooled(config, spec, trial_id, trial_dir, resume_dir, stop)
    finally:
        _STOPS.pop(trial_id, None)
        stop.done.set()


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
    if not _private.in_tune_session():
        return None
    import ray.tune

    tctx = ray.tune.get_context()
    ckpt = ray.tune.get_checkpoint()
    return _tune_context(tctx.get_trial_id(), _private.trial_storage_dir(tctx.get_trial_dir()),
                         ckpt.path if ckpt is not None else None)


def _build_trainer(config: dict[str, Any], spec: _TrialSpec, trial_id: str, trial_dir: str,
                   resume_dir: str | None, run_name: str, reports: Any) -> Any:
    """The Train V2 ``TorchTrainer`` of one trial attempt (``reports``: the forwarding queue)."""
    import ray.train
    from ray.train.torch import TorchConfig

    from itwinai_ray.backends.ray.forwarding import ForwardReports
    from itwinai_ray.backends.ray.train_run import torch_trainer_class

    return torch_trainer_class(spec.registry is not None)(
        train_loop_per_worker=_train_loop,
        torch_config=TorchConfig(**spec.torch_config),
        # The spec is small: worker_fn travels as an ObjectRef, fetched by each worker.
        train_loop_config={"spec": spec, "config": config, "trial_id": trial_id,
                           "trial_dir": trial_dir, "resume_dir": resume_dir,
                           "run_name": run_name},
        scaling_config=ray.train.ScalingConfig(
            num_workers=spec.num_workers, use_gpu=spec.use_gpu,
            resources_per_worker=dict(spec.resources_per_worker)),
        run_config=ray.train.RunConfig(
            name=run_name, storage_path=spec.train_storage_path,
            callbacks=[ForwardReports(reports)],
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
    from ray.util.queue import Queue

    from itwinai_ray.backends.ray.registry import Mailbox, registry_notify

    # A fresh Train run per attempt: resuming comes from Tune's checkpoint (retry, restore,
    # PBT exploit), never from an older Train run of the same trial.
    run_name = f"{trial_id}_{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:6]}"
    # The report hand-over lives in the experiment's registry actor: no process per trial.
    reports = (Mailbox(*spec.registry, run_name) if spec.registry
               else Queue(maxsize=1, actor_options={"num_cpus": 0}))
    run_dir = os.path.join(spec.train_storage_path, run_name)
    if spec.registry:  # deleted by the Tune callback if this trial is killed
        registry_notify(*spec.registry, "register", trial_id, None, run_dir)
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
    stop = _STOPS[trial_id] = _OrderlyStop.Signal()
    stopped = False
    thread.start()
    try:
        controller = _forward_reports(reports, thread, stop)
        stopped = stop.requested.is_set()
        if stopped:
            _stop_train_run(controller, reports, thread)
    finally:
        # Also on an error here: a controller blocked in put() then fails instead of hanging.
        reports.shutdown(force=thread.is_alive())
        thread.join(timeout=_JOIN_TIMEOUT_S)
        shutil.rmtree(run_dir, ignore_errors=True)
        _STOPS.pop(trial_id, None)
        stop.done.set()
    if "error" in outcome and not stopped:
        raise outcome["error"]


def _forward_reports(reports: Any, thread: threading.Thread, stop: Any) -> Any:
    """Re-report each Train report to Tune until the run ends or Tune stops the trial.

    Returns the Train controller's handle (sent with the first report), or None.
    """
    import queue as std_queue

    import ray.tune
    from ray.util.queue import Empty

    controller = None
    while not stop.requested.is_set():
        try:
            metrics, ckpt, handle = reports.get(block=True, timeout=_QUEUE_POLL_S)
        except (Empty, std_queue.Empty):
            if thread.is_alive() or not reports.empty():
                continue
            break
        controller = handle or controller
        tune_ckpt = (ray.tune.Checkpoint(path=ckpt.path, filesystem=ckpt.filesystem)
                     if ckpt is not None else None)
        try:
            ray.tune.report(metrics, checkpoint=tune_ckpt)  # copies the checkpoint
        except SystemExit:  # Tune stops the trial (see _OrderlyStop)
            stop.requested.set()
    return controller


def _stop_train_run(controller: Any, reports: Any, thread: threading.Thread) -> None:
    """Stop a running Train run in order: its controller aborts the worker group and
    removes its placement group, before this trial process goes (Tune stopped the trial).

    Reports that arrive meanwhile are taken and dropped, so a controller blocked handing
    one over gets to the abort. Without a controller handle (no report yet) the run is
    left to the hard path: the trial process exits and the registry releases the rest.
    """
    import queue as std_queue

    import ray
    from ray.util.queue import Empty

    if controller is None or not thread.is_alive():
        return
    # Ray 2.60's Train V2 has no public way to stop a run started in a thread: abort() is
    # what its own Ctrl-C handler calls on the controller (DataParallelTrainer.fit).
    aborted = controller.abort.remote()
    deadline = time.monotonic() + _ORDERLY_STOP_S
    while time.monotonic() < deadline and not ray.wait([aborted], timeout=0)[0]:
        try:
            reports.get(block=True, timeout=_QUEUE_POLL_S)
        except (Empty, std_queue.Empty):
            pass
    thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _train_loop(loop_config: dict[str, Any]) -> None:
    """Per-worker entry point of the Train worker group."""
    import ray.train

    spec: _TrialSpec = loop_config["spec"]
    rank = ray.train.get_context().get_world_rank()
    log = os.path.join(loop_config["trial_dir"], output.WORKER_LOG.format(rank=rank))
    with _captured(spec, log):
        _train_loop_body(loop_config, spec, rank)


def _train_loop_body(loop_config: dict[str, Any], spec: _TrialSpec, rank: int) -> None:
    import ray
    import ray.train
    import ray.util

    from itwinai_ray.backends.ray.registry import registry_notify

    tctx = ray.train.get_context()
    pg = ray.util.get_current_placement_group()
    if rank == 0 and pg is not None and spec.registry:  # before training: see registry.py
        registry_notify(*spec.registry, "register", loop_config["trial_id"], pg.id.hex())
    train_ckpt = ray.train.get_checkpoint()  # set after a worker-group restart
    resume = train_ckpt.path if train_ckpt is not None else loop_config["resume_dir"]
    if train_ckpt is None and resume:
        # ray.train.get_checkpoint() returns the checkpoint Tune resumes this trial from
        # (retry, restore, PBT), as itwinai 0.4's trainers read it under Train V1. Ray 2.60's
        # Train V2 has no public way to start a run from a checkpoint: see _private.
        _private.set_train_checkpoint(resume)

    reported = [0]

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ckpt)
        reported[0] += 1

    ctx = WorkerContext(
        world_size=tctx.get_world_size(), rank=rank, local_rank=tctx.get_local_rank(),
        local_world_size=tctx.get_local_world_size(), node_rank=tctx.get_node_rank(),
        trial_id=loop_config["trial_id"], trial_dir=loop_config["trial_dir"],
        resume_checkpoint_dir=resume, _report_fn=report,
        required_metrics=spec.required_metrics)
    try:
        _worker_fn(spec)(loop_config["config"], ctx)
    except BaseException:
        if spec.registry and reported[0]:  # its reports reach Tune before the group stops
            from itwinai_ray.backends.ray.registry import Mailbox

            Mailbox(*spec.registry, loop_config["run_name"]).wait_forwarded(
                reported[0], _FORWARD_WAIT_S)
        raise


_trial_fn.__mixins__ = (_OrderlyStop,)  # type: ignore[attr-defined]
