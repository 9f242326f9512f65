"""One meaning of "best": how a trial's reports become the one value that ranks it.

``tune_config.scope`` (Ray's ``ResultGrid.get_best_result(scope=...)`` meanings):

- ``best`` (default): the trial's best report over all epochs. The model a user keeps is that
  epoch's checkpoint (Tune keeps checkpoints ranked on the metric, the trainer saves its best
  model), so the configuration is ranked on what its kept checkpoint delivers; it is also what
  a live "best so far" shows, and for a trial a scheduler stopped early it is its last report
  or better.
- ``last``: the last report (Ray's default): the model the trial ended with.
- ``last-N-avg``: the mean of the last N reports: for noisy metrics.

The progress view, the summary, the results table, ``results.json``, ``best_config.yaml``
and the checkpoint reported as best all use :func:`score_history`. No Ray import here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError

DEFAULT_SCOPE = "best"
_AVG = re.compile(r"^last-(\d+)-avg$")


@dataclass(frozen=True)
class Scope:
    """``best``, ``last`` or ``last-N-avg`` (``kind`` "avg" with ``n`` = N)."""

    kind: str = DEFAULT_SCOPE
    n: int = 1

    @classmethod
    def parse(cls, text: Any) -> Scope:
        if isinstance(text, Scope):
            return text
        value = str(text).strip().lower() if text is not None else DEFAULT_SCOPE
        if value in ("best", "all"):  # "all": Ray's name for the best over all reports
            return cls("best")
        if value == "last":
            return cls("last")
        found = _AVG.match(value)
        if found and int(found.group(1)) >= 1:
            return cls("avg", int(found.group(1)))
        raise ConfigurationError(
            f"tune_config.scope is {text!r}, but must be 'best' (the best epoch, default), "
            f"'last' (the last epoch) or 'last-N-avg' with N >= 1 (e.g. 'last-3-avg').")

    def __str__(self) -> str:
        return f"last-{self.n}-avg" if self.kind == "avg" else self.kind

    def describe(self) -> str:
        """For titles: 'best epoch', 'last epoch', 'mean of the last 3 epochs'."""
        if self.kind == "avg":
            return f"mean of the last {self.n} epochs"
        return f"{self.kind} epoch"


@dataclass(frozen=True)
class TrialScore:
    """A trial's metric under a scope, with its best and last values."""

    value: float | None  # what ranks the trial
    best: float | None
    best_epoch: int | None
    last: float | None
    best_checkpoint: str | None = None  # the best report's checkpoint directory name


def finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number, else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def better(a: float, b: float, mode: str) -> bool:
    """Is ``a`` better than ``b`` for ``mode``?"""
    return a > b if mode == "max" else a < b


def score_values(values: Sequence[float], mode: str, scope: Scope) -> float | None:
    """The scope's value of a trial's finite metric values, in report order."""
    if not values:
        return None
    if scope.kind == "last":
        return values[-1]
    if scope.kind == "avg":
        window = values[-scope.n:]
        return sum(window) / len(window)
    return max(values) if mode == "max" else min(values)


def score_history(history: Sequence[Mapping[str, Any]], metric: str, mode: str,
                  scope: Scope) -> TrialScore:
    """Score a trial's reports (``result.json`` lines, oldest first)."""
    reports = [(r, v) for r in history if (v := finite(r.get(metric))) is not None]
    if not reports:
        return TrialScore(None, None, None, None)
    best_report, best = reports[0]
    for report, value in reports[1:]:
        if better(value, best, mode):
            best_report, best = report, value
    epoch = best_report.get("training_iteration")
    return TrialScore(
        value=score_values([v for _, v in reports], mode, scope), best=best,
        best_epoch=int(epoch) if epoch is not None else None, last=reports[-1][1],
        best_checkpoint=best_report.get("checkpoint_dir_name"))
