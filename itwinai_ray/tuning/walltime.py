"""Not starting a trial that cannot report before the stop signal (a time limit).

An allocation's time limit ends with a stop signal (SLURM's ``--signal=B:USR1@<s>``, see
:mod:`.interrupts`) at a known time, ``ITWINAI_RAY_STOP_AT`` (Unix seconds; the SLURM script
sets it from the job's end time, anyone can set it for a workstation's own deadline). A trial
that starts shortly before it would build its worker group, start an epoch and lose it all
at the signal. So a trial whose first report is not expected before the signal waits instead
(no worker group, no compute): the signal stops the experiment and the next allocation starts
the trial afresh. If no signal comes (the limit was extended), it starts after
:data:`HOLD_GRACE_S`.

"Expected" comes from the trials' own times: start to first report, measured by the driver
for each trial (re)start, kept across allocations in ``<experiment>/state/walltime.json``, which the
trials read. No Ray here.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, field

from ..errors import ConfigurationError

STOP_AT_ENV = "ITWINAI_RAY_STOP_AT"
#: Under the experiment directory, in a folder of its own: on resume, Ray Tune (2.60,
#: ``ExperimentStateManager.sync_down_experiment_state``) copies every ``*.json`` at the
#: experiment's top level into its driver staging folder and later uploads that copy back over
#: the original, so a state file there reverts to the previous allocation's (its stop time).
STATE_FILE = os.path.join("state", "walltime.json")
#: A held trial starts anyway when no stop signal came this long after it was due.
HOLD_GRACE_S = 120.0
#: The newest start-to-first-report times kept (the estimate is their median).
_KEEP = 20


def stop_at_from_env(env: dict[str, str] | None = None) -> float | None:
    """The stop signal's due time from the environment, or None when there is none."""
    raw = (os.environ if env is None else env).get(STOP_AT_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{STOP_AT_ENV}={raw!r} is not a time: set it to the Unix time "
                          f"(seconds) the stop signal is due, e.g. $(date -d '+1 hour' +%s), "
                          f"or unset it.")
    return value


@dataclass
class WalltimeState:
    """When the stop signal is due, and how long trials took from start to first report."""

    stop_at: float | None = None
    first_report_s: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.first_report_s = [*self.first_report_s, max(0.0, seconds)][-_KEEP:]

    def expected_first_report_s(self) -> float | None:
        return statistics.median(self.first_report_s) if self.first_report_s else None

    def hold_reason(self, now: float) -> str | None:
        """Why a trial starting ``now`` should wait, or None to start it."""
        expected = self.expected_first_report_s()
        if self.stop_at is None or expected is None:
            return None
        left = self.stop_at - now
        if now + expected <= self.stop_at or left < -HOLD_GRACE_S:
            return None
        due = f"due in {left:.0f} s" if left >= 0 else f"{-left:.0f} s overdue"
        return (f"its first report is expected {expected:.0f} s after it starts, the stop "
                f"signal is {due}; it starts in the next allocation (--resume)")

    def hold_s(self, now: float) -> float:
        """How long a held trial waits for the stop signal before it starts anyway."""
        return 0.0 if self.stop_at is None else max(0.0, self.stop_at + HOLD_GRACE_S - now)

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump({"stop_at": self.stop_at, "first_report_s": self.first_report_s}, fh)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> WalltimeState:
        """The saved state, or an empty one when there is none (or it cannot be read)."""
        try:
            with open(path) as fh:
                data = json.load(fh)
            times = [float(t) for t in data.get("first_report_s") or []]
            stop_at = data.get("stop_at")
            return cls(float(stop_at) if stop_at is not None else None, times[-_KEEP:])
        except (OSError, ValueError, TypeError, AttributeError):
            return cls()
