"""ReleaseTrialResources: the Tune callback that releases what a stopped trial leaves behind.

When a trial stops running it takes that trial's entries from the registry
(:mod:`.registry`) and, :data:`~.registry.RELEASE_GRACE_S` later (the trial stops its Train
run in order first), removes the placement groups (Ray issue #54305: a stopped trial kills
the Train controller before it removes its group; Ray's own cleaner needs the dashboard,
and worker-group trials run without it, see :mod:`.train_run`) and deletes the Train run
directories (Tune holds its own copies of every re-reported checkpoint).
"""

from __future__ import annotations

import time
from typing import Any

import ray.tune

from itwinai_ray.backends.ray.registry import RELEASE_GRACE_S, registry_call, release, release_all


class ReleaseTrialResources(ray.tune.Callback):
    """Removes a stopped trial's worker placement groups and Train run directories.

    A trial that stops in order ends its own Train run first (the controller removes its
    placement group), so the entries are taken from the registry when the trial stops
    but released only :data:`RELEASE_GRACE_S` later: removing the group under a live
    worker group would fail it (worker-group errors in Ray's logs). Then the release
    is a no-op, unless the trial process was killed before it could stop its run.
    """

    def __init__(self, registry_name: str, namespace: str | None) -> None:
        self._name, self._namespace = registry_name, namespace
        self._started: set[str] = set()  # trials that may have registered something
        self._due: list[tuple[float, Any]] = []  # (when, registry entry) to release

    def _release(self, trial: Any) -> None:
        self._started.discard(trial.trial_id)
        entry = registry_call(self._name, self._namespace, "pop", trial.trial_id)
        if entry and any(entry):
            self._due.append((time.monotonic() + RELEASE_GRACE_S, entry))

    def _release_due(self, everything: bool = False) -> None:
        now, due = time.monotonic(), []
        for when, entry in self._due:
            if everything or when <= now:
                release(*entry)
            else:
                due.append((when, entry))
        self._due = due

    def on_trial_start(self, iteration: int, trials: list, trial: Any,
                       **info: Any) -> None:
        self._started.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                          **info: Any) -> None:
        self._release(trial)

    on_trial_error = on_trial_recover = on_trial_complete

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # Stopped by a scheduler, paused by PBT (Tune has no pause hook) or terminated.
        for trial in trials:
            if trial.status == "RUNNING":
                self._started.add(trial.trial_id)  # also a reused actor (no start hook)
            elif trial.trial_id in self._started:
                self._release(trial)
        self._release_due()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._release_due(everything=True)
        release_all(self._name, self._namespace)
