"""Pooled worker-group trials (``tune_config.reuse_actors: true``, ``num_workers >= 2``).

The Train path (:mod:`.trial`) starts a Train V2 controller, a placement group and
``num_workers`` fresh processes for every trial, and tears them down after it: seconds per
trial that do no training. Here the trial's own placement group holds the workers' bundles
too (``[trial, worker 1, ... worker N]``), Tune reuses the trial process and that group for
the next trial with the same resources (``reuse_actors``), and the trial process keeps its
:class:`~.pool_worker.PoolWorker` actors in :data:`_POOLS` to run that next trial on:

- each trial still gets its own process group of the right size, fresh random state, its
  own launcher variables and a freshly unpickled ``worker_fn`` (:mod:`.pool_worker`);
- each report round (every rank reported) is re-reported to Tune with the checkpoint all
  ranks wrote; the workers wait for the verdict, so a trial that Tune stops there stops at
  once on every rank and leaves its workers ready for the next trial;
- a trial stopped between reports (time budget, experiment end) stops at its next report:
  Tune's calls to a trial process wait for the running one, which returns at a report (at
  the experiment's end, Tune kills a trial process that takes over 10 s, and its workers
  with it); workers that do not stop within ``_STOP_GRACE_S`` of the verdict are replaced;
- a worker error or death kills the trial's workers (another rank may wait in a collective
  forever); ``worker_max_failures`` restarts them from the latest checkpoint, as Train does;
- the workers are the trial process's child actors: they end with it (Tune stops it, the
  experiment ends) and their bundles with its placement group.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from itwinai_ray.backends.ray.pool_worker import (
    DONE,
    ERROR,
    GO,
    REPORT,
    STOP,
    STOPPED,
    Job,
    PoolWorker,
)
from itwinai_ray.backends.ray.trial_spec import _TrialSpec

logger = logging.getLogger(__name__)

_POLL_S = 0.2
#: How long one ``PoolWorker.next`` call waits for an item.
_NEXT_WAIT_S = 0.5
#: A trial stopped between two reports: how long its workers may take to reach the next.
_STOP_GRACE_S = 3.0
#: Tune's wait for the trial thread when it reuses the trial process (default 2 s): enough
#: for a stop at the grace's end.
_TUNE_RESET_ENV, _TUNE_RESET_S = "TUNE_FUNCTION_THREAD_TIMEOUT_S", str(int(_STOP_GRACE_S + 7))
_TERMINAL = (DONE, STOPPED, ERROR)


@dataclass
class _Group:
    """A trial process's workers, in rank order, with their node ranks and local ranks."""

    workers: list[Any]
    node_ranks: list[int]
    local_ranks: list[int]
    ip: str  # rank 0's node

    def local_world_size(self, rank: int) -> int:
        return self.node_ranks.count(self.node_ranks[rank])


#: This trial process's workers, by the id of its placement group (Tune reuses both).
_POOLS: dict[str, _Group] = {}


class GroupFailed(Exception):
    """A worker of the trial failed or died; its group is gone."""

    def __init__(self, error: BaseException, text: str) -> None:
        super().__init__(error, text)  # both in args: it unpickles (Ray sends it on as a cause)
        self.error, self.text = error, text

    def __str__(self) -> str:
        return self.text


def run_pooled(config: dict[str, Any], spec: _TrialSpec, trial_id: str, trial_dir: str,
               resume_dir: str | None, stop: Any) -> None:
    """Run one trial on this trial process's workers; ``stop``: its ``_OrderlyStop.Signal``."""
    from itwinai_ray.backends.ray.registry import registry_notify

    _ensure_reset_timeout()
    run_root = os.path.join(spec.train_storage_path,
                            f"{trial_id}_{time.strftime('%Y%m%d-%H%M%S')}_"
                            f"{uuid.uuid4().hex[:6]}")
    if spec.registry:  # deleted by the Tune callback if this trial is killed
        registry_notify(*spec.registry, "register", trial_id, None, run_root)
    job = Job(spec=spec, config=config, trial_id=trial_id, trial_dir=trial_dir,
              resume_dir=resume_dir, run_dir=run_root, rank=0, world_size=spec.num_workers,
              local_rank=0, local_world_size=1, node_rank=0, master=("", 0))
    restarts = spec.worker_max_failures
    try:
        for attempt in itertools.count(1):
            job = replace(job, run_dir=os.path.join(run_root, f"attempt_{attempt}"))
            group = _group(spec)
            attempt_run = _Attempt(group, job, stop)
            try:
                return attempt_run.run()
            except GroupFailed as failed:
                _discard(group)
                if stop.requested.is_set():  # stopped on purpose: not an error
                    return
                if restarts == 0:
                    raise failed.error from failed
                restarts -= 1 if restarts > 0 else 0  # -1: forever
                logger.warning("Trial %s: a worker failed (%s); restarting its workers from "
                               "%s.", trial_id, failed, attempt_run.latest or "the start")
                job = replace(job, resume_dir=attempt_run.latest or job.resume_dir)
    finally:
        shutil.rmtree(run_root, ignore_errors=True)


class _Attempt:
    """One run of the trial on one group of workers."""

    def __init__(self, group: _Group, job: Job, stop: Any) -> None:
        self.group, self.job, self.stop = group, job, stop
        #: The latest checkpoint the workers wrote (kept for a restart), or None.
        self.latest: str | None = None
        self._pending: dict[int, Any] = {}
        self._items: list[collections.deque[tuple[Any, ...]]] = []

    def run(self) -> None:
        import ray

        workers = self.group.workers
        try:
            master = (self.group.ip, ray.get(workers[0].free_port.remote()))
            ray.get([w.start.remote(self._job(rank, master))
                     for rank, w in enumerate(workers)])
        except ray.exceptions.RayError as exc:  # a worker died, or cannot start the trial
            raise GroupFailed(exc, f"a worker could not start the trial: {exc}") from exc
        self._items = [collections.deque() for _ in workers]
        self._pending = {rank: w.next.remote(_NEXT_WAIT_S) for rank, w in enumerate(workers)}
        while True:
            items = self._round()
            if items is None:  # Tune stopped the trial between two reports
                self._stop_workers()
                return
            kinds = {item[0] for item in items}
            if kinds == {REPORT}:
                if self._forward(items) == STOP:
                    self._stop_workers()
                    # End the trial function as Tune's report asked: returning instead would
                    # make Tune's wrapper report once more and wait, and a reused trial
                    # process would never be free (reset_config fails).
                    raise SystemExit(0)
            elif kinds <= {DONE, STOPPED}:
                return
            else:
                raise GroupFailed(RuntimeError(
                    "The ranks of a trial called ctx.report a different number of times "
                    "(some finished while others reported): every rank must report each "
                    "round."), "ranks out of step")

    def _job(self, rank: int, master: tuple[str, int]) -> Job:
        g = self.group
        return replace(self.job, rank=rank, local_rank=g.local_ranks[rank],
                       local_world_size=g.local_world_size(rank),
                       node_rank=g.node_ranks[rank], master=master)

    def _round(self) -> list[tuple[Any, ...]] | None:
        """The next item of every rank, or None when the trial was told to stop.

        Raises GroupFailed as soon as one rank fails: the others may wait for it forever."""
        while not self.stop.requested.is_set():
            for items in self._items:
                if items and items[0][0] == ERROR:
                    _, error, text = items[0]
                    raise GroupFailed(error, text)
            if all(self._items):
                return [items.popleft() for items in self._items]
            self._collect(_POLL_S)
        return None

    def _collect(self, timeout: float) -> None:
        import ray

        refs = {ref: rank for rank, ref in self._pending.items()}
        if not refs:
            return
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        for ref in ready:
            rank = refs[ref]
            del self._pending[rank]
            try:
                item = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the process died, or its item is unreadable
                item = (ERROR, exc, f"worker {rank}: {exc}")
            if item is not None:
                self._items[rank].append(item)
            if item is None or item[0] not in _TERMINAL:
                self._pending[rank] = self.group.workers[rank].next.remote(_NEXT_WAIT_S)

    def _forward(self, items: list[tuple[Any, ...]]) -> str:
        """Re-report one round to Tune (rank 0's metrics, the ranks' checkpoint); the verdict
        goes back to every worker."""
        import ray
        import ray.tune

        path = next((item[2] for item in items if item[2]), None)
        ckpt = ray.tune.Checkpoint.from_directory(path) if path else None
        try:
            ray.tune.report(items[0][1], checkpoint=ckpt)  # Tune copies the checkpoint
            verdict = GO
        except SystemExit:  # Tune stops the trial here (scheduler, stop condition, reuse)
            verdict = STOP
        try:
            ray.get([w.answer.remote(verdict) for w in self.group.workers])
        except ray.exceptions.RayError as exc:  # a worker died meanwhile
            if verdict == STOP:  # the trial ends anyway, as Tune asked: no error
                _discard(self.group)
                raise SystemExit(0) from exc
            raise GroupFailed(exc, f"a worker died: {exc}") from exc
        if path:
            if self.latest and self.latest != path:
                shutil.rmtree(self.latest, ignore_errors=True)
            self.latest = path
        return verdict

    def _stop_workers(self) -> None:
        """Stop every rank; wait for them to finish, or kill them after the grace."""
        import ray

        try:
            ray.get([w.stop.remote() for w in self.group.workers])
        except ray.exceptions.RayError:  # a worker is gone: so is the group
            _discard(self.group)
            return
        deadline = time.monotonic() + _STOP_GRACE_S
        while time.monotonic() < deadline:
            for items in self._items:  # reports made meanwhile are dropped
                while items and items[0][0] not in _TERMINAL:
                    items.popleft()
            if all(self._items):
                if not any(items[0][0] == ERROR for items in self._items):
                    return
                logger.warning("Trial %s: a worker failed while stopping; the workers are "
                               "replaced.", self.job.trial_id)
                break
            self._collect(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        else:
            logger.warning("Trial %s: its workers did not stop within %.0f s; they are "
                           "replaced.", self.job.trial_id, _STOP_GRACE_S)
        _discard(self.group)


def _ensure_reset_timeout() -> None:
    """Give Tune's reuse of this trial process (``reset_config``) time for an orderly stop:
    at least ``_TUNE_RESET_S`` (a larger value set by the user stays)."""
    try:
        current = float(os.environ.get(_TUNE_RESET_ENV, "0"))
    except ValueError:
        current = 0.0
    if current < float(_TUNE_RESET_S):
        os.environ[_TUNE_RESET_ENV] = _TUNE_RESET_S


def _group(spec: _TrialSpec) -> _Group:
    """This trial process's workers: the pooled ones, or new ones in its placement group."""
    import ray

    pg = ray.util.get_current_placement_group()
    if pg is None:
        raise RuntimeError("a pooled trial must run in its placement group (Tune's).")
    key = pg.id.hex()
    group = _POOLS.get(key)
    if group is not None:
        try:
            ray.get([w.pid.remote() for w in group.workers], timeout=30)
            return group
        except (ray.exceptions.RayError, TimeoutError):  # gone: start new ones
            _discard(group)
    group = _POOLS[key] = _start_group(spec, pg)
    return group


def _start_group(spec: _TrialSpec, pg: Any) -> _Group:
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    per = dict(spec.resources_per_worker)
    options: dict[str, Any] = {"num_cpus": per.pop("CPU", 0), "num_gpus": per.pop("GPU", 0),
                               "max_concurrency": 4}
    if "memory" in per:
        options["memory"] = per.pop("memory")
    if per:
        options["resources"] = per
    actor = ray.remote(PoolWorker)
    workers = [actor.options(**options, scheduling_strategy=PlacementGroupSchedulingStrategy(
        pg, placement_group_bundle_index=i + 1)).remote() for i in range(spec.num_workers)]
    layout = RankLayout.of(ray.get([w.place.remote() for w in workers]))
    ray.get([workers[i].share_gpus.remote(layout.node_gpus[r])
             for r, i in enumerate(layout.order)])
    return _Group(workers=[workers[i] for i in layout.order], node_ranks=layout.node_ranks,
                  local_ranks=layout.local_ranks, ip=layout.ip)


@dataclass(frozen=True)
class RankLayout:
    """Ranks of the workers from where they run, as Train V2 assigns them: the workers of
    one node get consecutive ranks (nodes in the order of their first bundle), a local rank
    each, and every worker of a node sees the GPUs of all of them (``LOCAL_RANK`` indexes
    ``CUDA_VISIBLE_DEVICES``)."""

    order: list[int]  # rank -> index of the worker (its bundle)
    node_ranks: list[int]
    local_ranks: list[int]
    node_gpus: list[list[str]]  # rank -> the GPU ids its node's workers share
    ip: str  # rank 0's node: the process group's address

    @classmethod
    def of(cls, places: list[tuple[str, str, list[str]]]) -> RankLayout:
        """``places``: (node id, node IP, GPU ids) of each worker, in bundle order."""
        nodes = list(dict.fromkeys(node for node, _, _ in places))
        order = sorted(range(len(places)), key=lambda i: nodes.index(places[i][0]))
        node_ranks = [nodes.index(places[i][0]) for i in order]
        gpus = {node: [g for n, _, ids in places if n == node for g in ids] for node in nodes}
        return cls(order=order, node_ranks=node_ranks,
                   local_ranks=[node_ranks[:r].count(node_ranks[r]) for r in range(len(order))],
                   node_gpus=[gpus[places[i][0]] for i in order], ip=places[order[0]][1])


def _discard(group: _Group) -> None:
    """Kill a group's workers and forget them (the next trial starts new ones)."""
    import ray

    for key, pooled in list(_POOLS.items()):
        if pooled is group:
            del _POOLS[key]
    for worker in group.workers:
        try:
            ray.kill(worker, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
