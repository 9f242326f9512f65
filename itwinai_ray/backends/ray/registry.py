"""The per-experiment registry actor and the calls to it.

- ``Registry`` (a 0-CPU named actor, one per experiment): which placement groups and Train
  run directories each trial created. Rank 0 registers its worker group's placement group
  as soon as it starts (before training), the trial registers its Train run directory
  before ``fit()``. It also holds the report mailboxes of the running Train runs.
- :class:`Mailbox`: a Train run's report hand-over, kept in the registry
  (see :mod:`.forwarding`).
- :func:`release_all`, :func:`release`, :func:`sweep_train_runs`: what a trial or the
  experiment leaves behind goes (see :mod:`.release`).

Registry calls never fail the experiment: errors are logged as warnings.
"""

from __future__ import annotations

import logging
import queue
import shutil
import time
from typing import Any

import ray

from itwinai_ray._fs import remove_tree

logger = logging.getLogger(__name__)

REGISTRY_PREFIX = "itwinai_ray_pg_registry_"
#: How long after a trial stops its leftovers are released (it stops its run in order first).
RELEASE_GRACE_S = 30.0
_REGISTRY_TIMEOUT_S = 30.0
#: A registry that is gone (``get_actor``: ValueError) or does not answer (Ray errors:
#: actor died, timeout). Anything else is a bug and raises.
_REGISTRY_ERRORS = (ValueError, ray.exceptions.RayError)


@ray.remote(num_cpus=0)
class Registry:
    """Per-experiment record: trial id -> placement group ids and Train run dirs.

    Also holds the report mailboxes of the running Train runs (``box_*``; an async
    actor, so a blocked ``box_put`` or ``box_get`` does not block the other calls).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[set[str], set[str]]] = {}
        self._boxes: dict[str, dict[str, Any]] = {}
        self._closed: set[str] = set()
        self._forwarded: dict[str, int] = {}  # reports handed over per box, ever

    def _box(self, key: str) -> dict[str, Any]:
        import asyncio

        if key in self._closed:  # a put after the close must fail, not open a new box
            return {"cond": asyncio.Condition(), "full": False, "item": None,
                    "closed": True}
        if key not in self._boxes:
            self._boxes[key] = {"cond": asyncio.Condition(), "full": False, "item": None,
                                "closed": False}
        return self._boxes[key]

    async def box_put(self, key: str, item: Any) -> None:
        box = self._box(key)
        async with box["cond"]:
            await box["cond"].wait_for(lambda: not box["full"] or box["closed"])
            if box["closed"]:
                raise RuntimeError(f"The report mailbox of Train run {key} is closed: "
                                   f"the trial stopped taking reports.")
            box["item"], box["full"] = item, True
            self._forwarded[key] = self._forwarded.get(key, 0) + 1
            box["cond"].notify_all()

    async def box_get(self, key: str, timeout: float | None) -> tuple[bool, Any]:
        import asyncio

        box = self._box(key)
        async with box["cond"]:
            try:
                await asyncio.wait_for(box["cond"].wait_for(lambda: box["full"]), timeout)
            except asyncio.TimeoutError:
                return False, None
            item, box["item"], box["full"] = box["item"], None, False
            box["cond"].notify_all()
            return True, item

    async def box_empty(self, key: str) -> bool:
        return not self._box(key)["full"]

    async def box_forwarded(self, key: str) -> int | None:
        """How many reports the box has taken; None once it is closed (nothing more comes)."""
        return None if key in self._closed else self._forwarded.get(key, 0)

    async def box_close(self, key: str) -> None:
        self._closed.add(key)
        box = self._boxes.pop(key, None)
        if box is not None:
            async with box["cond"]:
                box["closed"] = True
                box["cond"].notify_all()

    def register(self, trial_id: str, pg_id: str | None = None,
                 run_dir: str | None = None) -> None:
        pgs, dirs = self._entries.setdefault(trial_id, (set(), set()))
        if pg_id:
            pgs.add(pg_id)
        if run_dir:
            dirs.add(run_dir)

    def pop(self, trial_id: str) -> tuple[list[str], list[str]]:
        pgs, dirs = self._entries.pop(trial_id, (set(), set()))
        return sorted(pgs), sorted(dirs)

    def pop_all(self) -> dict[str, tuple[list[str], list[str]]]:
        out = {t: (sorted(p), sorted(d)) for t, (p, d) in self._entries.items()}
        self._entries.clear()
        return out


class Mailbox:
    """The report hand-over of one Train run, kept in the experiment's registry actor.

    A drop-in for the ``ray.util.queue.Queue(maxsize=1)`` that ``ForwardReports`` (``put``,
    on the controller) and the trial (``get``, ``empty``, ``shutdown``) use, without starting
    a queue actor process per trial. ``put`` blocks while the previous report has not been
    taken; after ``shutdown`` a blocked or later ``put`` raises.
    """

    def __init__(self, registry_name: str, namespace: str | None, key: str) -> None:
        self._name, self._namespace, self._key = registry_name, namespace, key
        self._handle: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None}

    def _actor(self) -> Any:
        if self._handle is None:
            self._handle = ray.get_actor(self._name, namespace=self._namespace)
        return self._handle

    def put(self, item: Any) -> None:
        ray.get(self._actor().box_put.remote(self._key, item))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        ok, item = ray.get(self._actor().box_get.remote(self._key, timeout if block else 0))
        if not ok:
            raise queue.Empty
        return item

    def empty(self) -> bool:
        return bool(ray.get(self._actor().box_empty.remote(self._key)))

    def wait_forwarded(self, count: int, timeout_s: float) -> bool:
        """Wait until the box has taken ``count`` reports (or is closed); False after
        ``timeout_s``.

        A Train worker that fails calls this first: Train V2 hands a report round to the
        callbacks only once every rank has reported, and drops a partial round when the
        worker group shuts down for the error. A rank that raises just after its report,
        while another rank is still saving its checkpoint for the same round, would lose
        that round (the retry then redoes the epoch).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                taken = ray.get(self._actor().box_forwarded.remote(self._key),
                                timeout=_REGISTRY_TIMEOUT_S)
            except _REGISTRY_ERRORS:  # the registry is gone: nothing will be taken
                return False
            if taken is None or taken >= count:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def shutdown(self, force: bool = False) -> None:
        """Close the mailbox: a controller blocked in ``put`` fails instead of hanging."""
        try:
            ray.get(self._actor().box_close.remote(self._key), timeout=_REGISTRY_TIMEOUT_S)
        except _REGISTRY_ERRORS:  # the registry may already be gone
            logger.debug("Mailbox %s: close failed.", self._key, exc_info=True)


def registry_call(name: str, namespace: str | None, method: str, *args: Any) -> Any:
    """Call ``method`` of the named registry; None when the registry is gone or does not
    answer (a warning says that what it holds is not released). Any other error raises."""
    try:
        handle = ray.get_actor(name, namespace=namespace)
        return ray.get(getattr(handle, method).remote(*args), timeout=_REGISTRY_TIMEOUT_S)
    except _REGISTRY_ERRORS:  # bookkeeping must never fail the experiment
        logger.warning("Placement group registry %s: %s%r failed: the placement groups and "
                       "Train run directories it holds are not released.", name, method, args,
                       exc_info=True)
        return None


def registry_notify(name: str, namespace: str | None, method: str, *args: Any) -> None:
    """Call ``method`` of the named registry without waiting (off the trial's start path).

    Calls from one process to an actor run in order, so a later ``registry_call`` from the
    driver sees this one.
    """
    try:
        getattr(ray.get_actor(name, namespace=namespace), method).remote(*args)
    except _REGISTRY_ERRORS:  # bookkeeping must never fail the experiment
        logger.warning("Placement group registry %s: %s%r failed.", name, method, args,
                       exc_info=True)


def release_all(name: str, namespace: str | None) -> None:
    """Release everything still in the registry (experiment end, Ctrl-C, errors)."""
    for pgs, dirs in (registry_call(name, namespace, "pop_all") or {}).values():
        release(pgs, dirs)


#: How long the end-of-experiment sweep of Train run directories retries a surviving tree.
SWEEP_TIMEOUT_S = 10.0


def sweep_train_runs(train_runs_dir: str) -> None:
    """Delete an experiment's Train run directories once Tune is done (experiment end).

    A stopped trial's directory is deleted when Tune stops it (:func:`release`), but its
    Train workers are killed with it and one may still persist a checkpoint there for a
    moment, recreating the directory. At the end every attempt is over and resuming comes
    from Tune's own checkpoints, so the whole tree goes; a tree that survives (a file written
    while it was removed) is removed again for up to :data:`SWEEP_TIMEOUT_S`.
    """
    if not remove_tree(train_runs_dir, SWEEP_TIMEOUT_S):
        logger.warning("Could not delete the Train run directories in %s.", train_runs_dir)


def release(pg_ids: list[str], run_dirs: list[str]) -> None:
    """Remove placement groups not yet REMOVED, then delete Train run directories."""
    for pg_id in pg_ids:
        remove_placement_group(pg_id)
    for run_dir in run_dirs:
        shutil.rmtree(run_dir, ignore_errors=True)


def remove_placement_group(pg_id: str) -> None:
    """Remove a placement group by hex id unless it is already REMOVED."""
    from ray.util.placement_group import PlacementGroup

    try:
        pg = PlacementGroup(ray.PlacementGroupID.from_hex(pg_id))
        state = ray.util.placement_group_table(pg).get("state")
        if state and state != "REMOVED":
            ray.util.remove_placement_group(pg)
            logger.debug("Removed leftover placement group %s (was %s).", pg_id, state)
    except Exception:  # noqa: BLE001 - cleanup must never fail the experiment
        logger.warning("Could not remove placement group %s.", pg_id, exc_info=True)
