"""One reusable worker process of a pooled trial (``tune_config.reuse_actors: true``).

A :class:`PoolWorker` actor lives in one worker bundle of its trial's placement group and
serves that trial process's trials one after another (Tune reuses the trial process and its
placement group, see :mod:`.pool`). ``torch`` is imported once, when the actor starts.

For each trial, :meth:`PoolWorker.start` runs ``worker_fn`` in a thread of the actor:

- a fresh process group of the trial's size (``init_process_group`` on the trial's own
  address and port), destroyed when the trial ends;
- the launcher variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...) set
  for the trial, and the whole environment put back afterwards;
- fresh random state (``random``, ``numpy``, ``torch``), as in a new process;
- ``worker_fn`` unpickled again from the object store, so no model, optimizer or trainer
  object outlives its trial.

Each ``ctx.report`` copies the checkpoint (all ranks into one directory, as Train does),
hands the report to the trial process and waits for its verdict: go on, or stop (Tune stopped
the trial at this report: ``_Stopped`` ends ``worker_fn`` here, on every rank at once). Unlike
a Train worker, ``worker_fn`` runs in a thread of the actor (``signal.signal`` is not
available to it) in the actor's working directory, and threads it starts outlive the trial.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import shutil
import socket
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from itwinai_ray.backends.ray import output
from itwinai_ray.backends.ray.trial_spec import _captured, _TrialSpec, _worker_fn
from itwinai_ray.tuning.context import WorkerContext

GO, STOP = "go", "stop"
#: Items a worker hands to its trial process: ("report", metrics, checkpoint path or None),
#: ("done",), ("stopped",) or ("error", exception, traceback text).
REPORT, DONE, STOPPED, ERROR = "report", "done", "stopped", "error"


class _Stopped(BaseException):
    """Raised in ``ctx.report`` when the trial was stopped (not an ``Exception``, so user code
    that catches errors does not swallow it)."""


@dataclass(frozen=True)
class Job:
    """One rank of one trial."""

    spec: _TrialSpec
    config: dict[str, Any]
    trial_id: str
    trial_dir: str
    resume_dir: str | None
    #: Where reported checkpoints are gathered (``<train runs>/<run name>``), shared storage.
    run_dir: str
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    master: tuple[str, int]

    def launch_env(self) -> dict[str, str]:
        """The variables torchrun and Ray Train set for a worker."""
        return {"RANK": str(self.rank), "WORLD_SIZE": str(self.world_size),
                "LOCAL_RANK": str(self.local_rank),
                "LOCAL_WORLD_SIZE": str(self.local_world_size),
                "NODE_RANK": str(self.node_rank), "MASTER_ADDR": self.master[0],
                "MASTER_PORT": str(self.master[1])}


class PoolWorker:
    """A reusable worker (a threaded Ray actor: ``max_concurrency`` >= 3)."""

    def __init__(self) -> None:
        import torch  # noqa: F401 - once per process, not once per trial
        import torch.distributed  # noqa: F401

        self._reports: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=1)
        self._verdicts: queue.Queue[str] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- placement ------------------------------------------------------------------------
    def place(self) -> tuple[str, str, list[str]]:
        """(node id, node IP, the GPU ids Ray gave this worker)."""
        import ray

        rctx = ray.get_runtime_context()
        return (rctx.get_node_id(), ray.util.get_node_ip_address(),
                [str(g) for g in rctx.get_accelerator_ids().get("GPU", [])])

    def share_gpus(self, ids: list[str]) -> None:
        """See all the GPUs of the trial's workers on this node (``LOCAL_RANK`` indexes them),
        as Train does; called once, before anything touches CUDA."""
        if ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(
                sorted(set(ids), key=lambda g: (len(g), g)))

    def free_port(self) -> int:
        with socket.socket() as sock:
            sock.bind(("", 0))
            return int(sock.getsockname()[1])

    def pid(self) -> int:
        return os.getpid()

    # -- one trial ------------------------------------------------------------------------
    def start(self, job: Job) -> None:
        if self._thread is not None:  # it handed over its last item: it ends now
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError("this pooled worker still runs its previous trial")
        self._reports = queue.Queue(maxsize=1)
        self._verdicts = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(job,),
                                        name=f"trial-{job.trial_id}-rank{job.rank}",
                                        daemon=True)
        self._thread.start()

    def next(self, timeout: float) -> tuple[Any, ...] | None:
        """The next item of the running trial, or None after ``timeout`` seconds."""
        try:
            return self._reports.get(timeout=timeout)
        except queue.Empty:
            return None

    def answer(self, verdict: str) -> None:
        """The trial's verdict on this worker's last report (GO or STOP)."""
        self._verdicts.put(verdict)

    def stop(self) -> None:
        """Stop the running trial at its next report (or now, if it waits for a verdict)."""
        self._stop.set()
        try:
            self._verdicts.put_nowait(STOP)
        except queue.Full:
            pass

    def _run(self, job: Job) -> None:
        saved_env = dict(os.environ)
        log = os.path.join(job.trial_dir, output.WORKER_LOG.format(rank=job.rank))
        item: tuple[Any, ...] = (DONE,)
        try:
            with _captured(job.spec, log), _console_logging():
                try:
                    os.environ.update(job.launch_env())
                    _fresh_random_state()
                    _init_process_group(job)
                    _worker_fn(job.spec)(job.config, self._context(job))
                except _Stopped:
                    item = (STOPPED,)
                except BaseException as exc:  # noqa: BLE001 - handed to the trial process
                    # Said before the release: with NCCL, destroying the group may wait for
                    # the other ranks, which wait for this one (the trial kills them all).
                    item = (ERROR, _picklable(exc), traceback.format_exc())
                    self._reports.put(item)
                _release_trial_state()
        finally:
            _restore_env(saved_env)
        if item[0] != ERROR:  # the worker is clean: the next trial may start on it
            self._reports.put(item)

    def _context(self, job: Job) -> WorkerContext:
        rounds = [0]

        def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
            if self._stop.is_set():
                raise _Stopped
            rounds[0] += 1
            path = None
            if checkpoint_dir:  # every rank's files in one directory, as Train merges them
                path = os.path.join(job.run_dir, f"checkpoint_{rounds[0]:06d}")
                shutil.copytree(checkpoint_dir, path, dirs_exist_ok=True)
            self._reports.put((REPORT, metrics, path))
            if self._verdicts.get() == STOP:
                raise _Stopped

        return WorkerContext(
            world_size=job.world_size, rank=job.rank, local_rank=job.local_rank,
            local_world_size=job.local_world_size, node_rank=job.node_rank,
            trial_id=job.trial_id, trial_dir=job.trial_dir,
            resume_checkpoint_dir=job.resume_dir, _report_fn=report,
            required_metrics=job.spec.required_metrics)


@contextlib.contextmanager
def _console_logging() -> Iterator[None]:
    """Log records of level INFO and above to stderr (the worker's log file) during a trial,
    as Ray Train configures its workers' root logger; unless the process has its own."""
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _fresh_random_state() -> None:
    """Seed ``random``, ``numpy`` and ``torch`` from the OS, as a new process starts."""
    import torch

    random.seed()
    torch.seed()
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy ships with torch's users
        return
    np.random.seed(int.from_bytes(os.urandom(4), "little"))


def _init_process_group(job: Job) -> None:
    """The trial's own process group, as Train's ``TorchConfig`` makes it."""
    import torch
    import torch.distributed as dist

    backend = job.spec.torch_config.get("backend") or (
        "nccl" if job.spec.use_gpu and torch.cuda.is_available() else "gloo")
    timeout = timedelta(seconds=job.spec.torch_config.get("timeout_s") or 1800)
    host, port = job.master
    dist.init_process_group(backend=backend, init_method=f"tcp://{host}:{port}",
                            rank=job.rank, world_size=job.world_size, timeout=timeout)


def _release_trial_state() -> None:
    """Destroy what a trial left of torch.distributed (and of DeepSpeed's groups), and free
    its memory (a model kept alive by a reference cycle, CUDA's cached blocks), as Train's
    worker shutdown does."""
    import gc

    import torch
    import torch.distributed as dist

    gc.collect()  # the trial's DDP wrappers go before their group (see clean_up)
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    from itwinai_ray.distributed.deepspeed import _reset_deepspeed_groups

    _reset_deepspeed_groups()
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _restore_env(saved: dict[str, str]) -> None:
    """Put back the variables a trial set, changed or removed (only those: other threads of
    the process read the environment meanwhile)."""
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles (Ray sends it to the trial process), else a RuntimeError of it."""
    import ray.cloudpickle

    try:
        ray.cloudpickle.loads(ray.cloudpickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable
        return RuntimeError(f"{type(exc).__name__}: {exc}")
