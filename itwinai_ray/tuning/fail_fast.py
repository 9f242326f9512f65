"""``run_config.fail_fast: auto``: stop an experiment whose first trials fail the same way.

A bug in the trainer (a typo, a missing attribute) fails every trial before its first
report, one after another, and each one still takes its place in the allocation. Measured: 3
of 3 trials failed with the same AttributeError at epoch 0. The rule of ``auto``:

    The first 2 trials to end (in the order they end) both errored for good, neither
    reported anything, and both errors have the same exception type and message: stop
    the experiment and report the error once.

Only the first 2 ends count. Once a trial has reported, or has finished or been stopped
normally, the code path works, and a later error may be the search's own business (a learning
rate that diverges): later pairs never trigger the rule. A trial that errors with a different
message, or whose process or node was lost (an infrastructure fault, not a bug), also settles
the rule without stopping.

This module is Ray-free: :class:`FirstTrialsFailAlike` is fed :class:`TrialEnd` records and
answers with a :class:`StopDecision`. The Ray adapter (a Tune callback and stopper) is
:mod:`itwinai_ray.backends.ray.fail_fast`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: How many of the first trials to end must fail alike.
WINDOW = 2

#: Exceptions of a lost process or node (by class name, anywhere in the MRO): a fault of the
#: machine, not a deterministic bug, so it never counts as "the same error".
_INFRASTRUCTURE = frozenset({
    "RayActorError", "ActorDiedError", "ActorUnavailableError", "ActorUnschedulableError",
    "NodeDiedError", "WorkerCrashedError", "OutOfMemoryError", "ObjectLostError",
    "OwnerDiedError", "PreemptionError", "WorkerHealthCheckFailedError",
})

#: Memory addresses differ between processes for the same bug ("<Foo object at 0x7f...>").
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


@dataclass(frozen=True)
class TrialEnd:
    """How one trial ended, as far as the rule needs to know."""

    trial_id: str
    errored: bool
    reported: bool
    #: ``"Type: message"`` on one line (see :func:`error_signature`); None when the error is
    #: unknown or not comparable (a lost process).
    error: str | None = None
    #: The trial's error file (Tune's ``error.txt`` in the trial directory).
    log_path: str | None = None

    @property
    def failed_early(self) -> bool:
        """Errored for good before any report, with an error that can be compared."""
        return self.errored and not self.reported and self.error is not None


@dataclass(frozen=True)
class StopDecision:
    """Stop the experiment: the first trials all failed early with ``error``."""

    error: str
    log_path: str | None
    trial_ids: tuple[str, ...]

    def message(self) -> str:
        """The one line the user sees: what failed, where the log is, what to do."""
        where = f" (see {self.log_path})" if self.log_path else ""
        return (f"Stopped the experiment: the first {len(self.trial_ids)} trials "
                f"({', '.join(self.trial_ids)}) both failed before reporting anything with "
                f"{self.error}{where}. Fix the error, then run again. Set "
                f"run_config.fail_fast: false to run every trial regardless.")


class FirstTrialsFailAlike:
    """The ``fail_fast: auto`` rule (see the module docstring), fed one trial end at a time.

    A trial counts once, at its first end (a repeated end of the same trial id is ignored,
    so a callback that hears of it twice cannot make one trial look like two). Retried trials
    (``max_failures``) count only when they error for good: Tune reports an error end only
    then, and a retry that reported before failing is not an early failure.
    """

    def __init__(self, window: int = WINDOW) -> None:
        if window < 2:
            raise ValueError(f"window is {window}, but must be >= 2 (failures to compare).")
        self.window = window
        self.ends: list[TrialEnd] = []
        #: Set once the rule triggered; the Tune stopper reads it.
        self.decision: StopDecision | None = None

    @property
    def settled(self) -> bool:
        """True once the rule can no longer change its answer."""
        return self.decision is not None or len(self.ends) >= self.window or any(
            not end.failed_early for end in self.ends)

    def trial_ended(self, end: TrialEnd) -> StopDecision | None:
        """Record an end; the decision the first time the rule triggers, else None."""
        if self.settled or any(e.trial_id == end.trial_id for e in self.ends):
            return None
        self.ends.append(end)
        if len(self.ends) < self.window or not all(e.failed_early for e in self.ends):
            return None
        if len({e.error for e in self.ends}) != 1:
            return None
        self.decision = StopDecision(
            error=str(self.ends[0].error), log_path=self.ends[0].log_path,
            trial_ids=tuple(e.trial_id for e in self.ends))
        return self.decision


def error_signature(error: BaseException | None) -> str | None:
    """``"Type: message"`` of the error that failed a trial, comparable across trials.

    Unwraps Ray's task error (``.cause``), Train V2's ``WorkerGroupError`` (the failure of
    the lowest rank in ``.worker_failures``) and ``ControllerError``
    (``.controller_failure``), so the user's own exception is compared, not a wrapper that
    names a process id. Memory addresses are masked. None for no error or a lost
    process/node.
    """
    for _ in range(8):  # wrappers nest a few levels at most
        if error is None:
            return None
        inner = _wrapped(error)
        if inner is None:
            break
        error = inner
    if any(cls.__name__ in _INFRASTRUCTURE for cls in type(error).__mro__):
        return None
    message = _ADDRESS.sub("0x…", " ".join(str(error).split()))
    return f"{type(error).__name__}: {message}"[:500]


def _wrapped(error: BaseException) -> BaseException | None:
    """The exception ``error`` wraps (Ray task, Train worker group, Train controller)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    failures = getattr(error, "worker_failures", None)
    if isinstance(failures, Mapping) and failures:
        first = failures[min(failures)]
        return first if isinstance(first, BaseException) else None
    controller = getattr(error, "controller_failure", None)
    return controller if isinstance(controller, BaseException) else None


def parse_mode(value: Any) -> bool | str | None:
    """``True``, ``False`` or ``"auto"`` from a YAML value (booleans, or the strings ``auto``,
    ``true``, ``false`` in any case); None when it is none of these."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"auto": "auto", "true": True, "false": False}.get(value.strip().lower())
    return None
