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
the trial at this report: ``_Stopped`` ends ``worker_fn`` here, on every rank at once).
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import socket
import threading
import traceback
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
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)

    def free_port(self) -> int:
        with socket.socket() as sock:
            sock.bind(("", 0))
            return int(sock.getsockname()[1])

    def pid(self) -> int:
        return os.getpid()

    # -- one trial ------------------------------------------------------------------------
    def start(self, job: Job) -> None:
        if self._thread is not None and self._thread.is_alive():
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
        try:
            with _captured(job.spec, log):
                os.environ.update(job.launch_env())
                _fresh_random_state()
                _init_process_group(job)
                try:
                    _worker_fn(job.spec)(job.config, self._context(job))
                finally:
                    _release_process_group()
            item: tuple[Any, ...] = (DONE,)
        except _Stopped:
            item = (STOPPED,)
        except BaseException as exc:  # noqa: BLE001 - handed to the trial process
            item = (ERROR, _picklable(exc), traceback.format_exc())
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
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


def _release_process_group() -> None:
    """Destroy what a trial left of torch.distributed (and of DeepSpeed's groups)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    try:
        from itwinai_ray.distributed.deepspeed import _reset_deepspeed_groups
    except ImportError:  # pragma: no cover
        return
    _reset_deepspeed_groups()


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles (Ray sends it to the trial process), else a RuntimeError of it."""
    import ray.cloudpickle

    try:
        ray.cloudpickle.dumps(exc)
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable
        return RuntimeError(f"{type(exc).__name__}: {exc}")
