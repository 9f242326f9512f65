"""Live progress of an HPO experiment: one compact view, without Ray.

:class:`ProgressState` holds what the view shows: trial counts by state, the best metric so
far, the elapsed time and an ETA when a budget is known (``num_samples`` trials or a time
budget). :class:`ProgressView` renders it: a ``rich`` Live panel in a terminal, plain
periodic lines otherwise (SLURM logs, pipes). The Tune callback that feeds it lives in
:mod:`itwinai_ray.backends.ray.progress`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from .scope import Scope, better, score_values
from .scope import finite as _finite

#: Trial states shown, in display order.
STATES = ("pending", "running", "finished", "stopped", "errored")


@dataclass
class TrialProgress:
    """One trial as the view knows it."""

    trial_id: str
    state: str = "pending"
    iteration: int = 0
    last: float | None = None
    values: list[float] = field(default_factory=list)  # the metric's reports, in order
    score: float | None = None  # ``values`` under the state's scope


@dataclass
class ProgressState:
    """Counts, best metric, timing. Updated by events, rendered by :class:`ProgressView`."""

    metric: str | None = None
    mode: str | None = None
    total: int | None = None
    time_budget_s: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    trials: dict[str, TrialProgress] = field(default_factory=dict)
    best: float | None = None
    best_trial: str | None = None
    #: What ranks a trial (its best, last or last-N-avg report), as in the results table.
    scope: Scope = field(default_factory=Scope)

    # ---------------------------------------------------------------- events
    def _trial(self, trial_id: str) -> TrialProgress:
        return self.trials.setdefault(trial_id, TrialProgress(trial_id))

    def set_state(self, trial_id: str, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"Unknown trial state {state!r}; one of {STATES}.")
        self._trial(trial_id).state = state

    def result(self, trial_id: str, iteration: int, metrics: dict[str, Any]) -> None:
        """A reported result: update the trial's iteration and the best metric so far."""
        trial = self._trial(trial_id)
        if trial.state == "pending":
            trial.state = "running"
        trial.iteration = max(trial.iteration, int(iteration or 0))
        value = _finite(metrics.get(self.metric)) if self.metric else None
        if value is None:
            return
        trial.last = value
        trial.values.append(value)
        mode = self.mode or "min"
        trial.score = score_values(trial.values, mode, self.scope)
        self.best, self.best_trial = None, None  # last and last-N-avg scores may get worse
        for other in self.trials.values():
            if other.score is not None and (self.best is None
                                            or better(other.score, self.best, mode)):
                self.best, self.best_trial = other.score, other.trial_id

    # ---------------------------------------------------------------- derived
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for trial in self.trials.values():
            out[trial.state] += 1
        if self.total is not None:  # trials the searcher has not created yet
            out["pending"] += max(0, self.total - len(self.trials))
        return out

    def done(self) -> int:
        c = self.counts()
        return c["finished"] + c["stopped"] + c["errored"]

    def elapsed(self, now: float | None = None) -> float:
        return (now if now is not None else time.monotonic()) - self.started_at

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left: from the pace of completed trials and/or the time budget."""
        elapsed = self.elapsed(now)
        estimates = []
        done = self.done()
        if self.total and done:
            estimates.append(max(0.0, elapsed * (self.total - done) / done))
        if self.time_budget_s:
            estimates.append(max(0.0, self.time_budget_s - elapsed))
        return min(estimates) if estimates else None

    def key(self) -> tuple[Any, ...]:
        """What changes a plain line (for printing only on change)."""
        return (tuple(self.counts().values()), self.best)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours:d}:{rest // 60:02d}:{rest % 60:02d}"


def format_line(state: ProgressState, now: float | None = None) -> str:
    """One plain line: ``[hpo 0:01:05] 2 running, 3 finished, ... | best ... | ETA ...``."""
    c = state.counts()
    parts = [f"{c[s]} {s}" for s in STATES if c[s] or s in ("running", "finished")]
    total = f" ({state.done()}/{state.total} done)" if state.total else ""
    line = f"[hpo {format_duration(state.elapsed(now))}] {', '.join(parts)}{total}"
    if state.metric:
        best = "-" if state.best is None else f"{state.best:.4g} (trial {state.best_trial})"
        line += f" | best {state.metric} ({state.mode}, {state.scope.describe()}): {best}"
    eta = state.eta(now)
    if eta is not None:
        line += f" | ETA {format_duration(eta)}"
    return line


def render_rich(state: ProgressState, now: float | None = None) -> Any:
    """Two compact lines: a bar of trials done, then counts, best metric, elapsed and ETA."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    c = state.counts()
    colors = {"pending": "dim", "running": "cyan", "finished": "green", "stopped": "yellow",
              "errored": "red"}
    counts = Text("  ").join(Text(f"{c[s]} {s}", style=colors[s]) for s in STATES)
    best = "-" if state.best is None else f"{state.best:.4g} ({state.best_trial})"
    timing = f"elapsed {format_duration(state.elapsed(now))}  ETA {format_duration(state.eta(now))}"
    head = Table.grid(padding=(0, 2))
    head.add_row(Text("HPO", style="bold"),
                 ProgressBar(total=float(state.total or 1), completed=float(state.done()),
                             width=30),
                 Text(f"{state.done()}/{state.total if state.total else '?'} trials done"),
                 Text(timing))
    tail = Text.assemble(counts, "  |  ", (f"best {state.metric or ''}: ", "bold"), best)
    return Group(head, tail)


class ProgressView:
    """Shows a :class:`ProgressState`: rich Live in a terminal, plain lines otherwise.

    Args:
        state: what to show.
        stream: where to write (default ``sys.stdout``).
        live: force (True) or refuse (False) the rich view; default: when ``stream`` is a TTY.
        interval_s: plain lines: a line at least this often while trials run.
        min_interval_s: plain lines: at most one line this often when something changes.
    """

    def __init__(self, state: ProgressState, stream: TextIO | None = None,
                 live: bool | None = None, interval_s: float = 60.0,
                 min_interval_s: float = 5.0) -> None:
        self.state = state
        self.stream = stream
        self.live = live
        self.interval_s = interval_s
        self.min_interval_s = min_interval_s
        self.lines: list[str] = []  # every plain line written (for tests and summaries)
        self._live: Any = None
        self._last_time = -math.inf
        self._last_key: Any = None

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment: a terminal stream cannot be."""
        return {**self.__dict__, "stream": None, "_live": None}

    def start(self) -> None:
        use_live = self.live if self.live is not None else _is_tty(self._out())
        if use_live:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self._out())
            self._live = Live(render_rich(self.state), console=console,
                              refresh_per_second=2, transient=False)
            self._live.start()
        else:
            self.update(force=True)

    def update(self, now: float | None = None, force: bool = False) -> None:
        """Refresh: the Live panel, or a plain line when due."""
        if self._live is not None:
            self._live.update(render_rich(self.state, now))
            return
        clock = time.monotonic() if now is None else now
        since = clock - self._last_time
        changed = self.state.key() != self._last_key
        if force or since >= self.interval_s or (changed and since >= self.min_interval_s):
            self._write(format_line(self.state, now))
            self._last_time, self._last_key = clock, self.state.key()

    def stop(self) -> None:
        """The final state, once."""
        if self._live is not None:
            self._live.update(render_rich(self.state))
            self._live.stop()
            self._live = None
            return
        self._write(format_line(self.state))

    def _write(self, line: str) -> None:
        self.lines.append(line)
        out = self._out()
        out.write(line + "\n")
        out.flush()


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def end_state(last_done: bool, iteration: int, max_iterations: int | None) -> str:
    """How a trial that completed without error ended: ``finished`` or ``stopped``.

    Tune marks the last result ``done`` when a scheduler or stopper ends the trial; a
    trainable that returns on its own leaves it unset. A trial stopped at
    ``max_iterations`` (e.g. ASHA's ``max_t``) has run its course: it counts as finished.
    """
    if max_iterations is not None:
        return "stopped" if iteration < max_iterations else "finished"
    return "stopped" if last_done else "finished"
