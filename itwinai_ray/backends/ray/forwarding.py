"""ForwardReports: the Train ``UserCallback`` that hands a trial's reports to the trial.

It runs on the Train controller and hands each report (the first with the controller's
handle) to the trial through a :class:`~.registry.Mailbox` of size 1 (kept in the registry
actor: no actor process per trial), or a ``ray.util.queue.Queue`` of size 1 without a
registry.
"""

from __future__ import annotations

from typing import Any

import ray
import ray.train


class ForwardReports(ray.train.UserCallback):
    """Runs on the Train controller: hands each report to the trial through a queue.

    ``after_report`` is a synchronous hook that the controller calls from its asyncio
    loop (``_poll_workers`` -> ``WorkerGroup.poll_status`` -> ``ReportCallbackHandler``),
    so the blocking ``put`` below stalls that loop while the trial has not taken the
    previous report. This is deliberate and harmless here:

    - it is the back-pressure: the stalled controller stops polling, the workers then
      block in ``ray.train.report`` on their own result queue of size 1, so Train runs at
      most one report ahead of Tune (Train's checkpoint retention relies on it) and a
      trial that the scheduler stops has not trained far beyond its last result;
    - the controller loop already blocks (``poll_status`` waits on the workers); the one
      other call, ``abort`` when Tune stops the trial, comes while the trial keeps taking
      reports, so a blocked ``put`` returns and the loop gets to it
      (``trial._stop_train_run``);
    - it cannot hang forever: when the trial stops consuming it shuts the queue down,
      ``put`` then raises and the controller fails the run.
    """

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self._sent_handle = False

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                     checkpoint: Any) -> None:
        # The first report also carries this controller's handle: the trial stops its
        # Train run in order with it (see trial._stop_train_run).
        handle = None
        if not self._sent_handle:
            handle, self._sent_handle = ray.get_runtime_context().current_actor, True
        self._queue.put((dict(metrics[0]) if metrics else {}, checkpoint, handle))
