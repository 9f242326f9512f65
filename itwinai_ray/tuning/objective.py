"""What is tuned: ``metric`` and ``mode``, each a string or (several metrics) a list.

:meth:`TunedMetrics.parse` is the one reading of that YAML shape: every module that needs the
metrics as a list, the first one, or the one a scheduler drives asks it. Which metric wins
where several are tuned is decided here too:

- trials are ranked (``results``, ``results.json``) on the first metric (:attr:`first`);
- checkpoint ranking, stop conditions and the live progress view follow the scheduler's
  metric when it is one of the tuned ones, else the first (:meth:`primary`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError


def as_list(value: Any) -> list[Any]:
    """A list or tuple as a list; any other value as a list of one."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


@dataclass(frozen=True)
class TunedMetrics:
    """The tuned metrics and their modes, in the order given (one mode per metric)."""

    metrics: tuple[Any, ...]
    modes: tuple[Any, ...]

    @classmethod
    def parse(cls, metric: Any, mode: Any) -> TunedMetrics:
        """``metric``, ``mode``: strings or lists; a single mode applies to every metric.
        Not validated (see :func:`check_metric_mode`)."""
        metrics = tuple(as_list(metric))
        modes = tuple(mode) if isinstance(mode, (list, tuple)) else (mode,) * len(metrics)
        return cls(metrics, modes)

    @property
    def several(self) -> bool:
        return len(self.metrics) > 1

    @property
    def first(self) -> tuple[Any, Any]:
        """The first metric and its mode: what ranks the trials."""
        return self.metrics[0], self.modes[0]

    def pairs(self) -> list[tuple[Any, Any]]:
        return list(zip(self.metrics, self.modes))

    def mode_of(self, metric: str) -> Any:
        return self.modes[self.metrics.index(metric)]

    def primary(self, scheduler_metric: Any) -> tuple[Any, Any]:
        """The metric that ranks checkpoints and drives stops: the scheduler's when several
        are tuned and it is one of them, else the first."""
        if self.several and scheduler_metric in self.metrics:
            return scheduler_metric, self.mode_of(scheduler_metric)
        return self.first


def check_metric_mode(metric: Any, mode: Any) -> None:
    """``mode`` must be ``min`` or ``max`` (lists of both for multi-objective searchers)."""
    metrics, modes = as_list(metric), as_list(mode)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ConfigurationError(f"metric is {metric!r}, but must be a non-empty metric name.")
    for m in modes:
        if m not in ("min", "max"):
            raise ConfigurationError(f"mode is {m!r}, but must be 'min' or 'max'.")
    if len(metrics) != len(modes):
        raise ConfigurationError(f"metric {metric!r} and mode {mode!r} differ in length.")
    if len(set(metrics)) != len(metrics):
        raise ConfigurationError(f"metric {metric!r} names a metric twice.")


def normalize_objectives(metric: Any, mode: Any) -> tuple[Any, Any]:
    """One metric stays a string; several become lists, a single mode applying to all."""
    if not isinstance(metric, (list, tuple)):
        check_metric_mode(metric, mode)
        return metric, mode
    tuned = TunedMetrics.parse(metric, mode)
    if not tuned.several:
        return tuned.first
    check_metric_mode(list(tuned.metrics), list(tuned.modes))
    return list(tuned.metrics), list(tuned.modes)
