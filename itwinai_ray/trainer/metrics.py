"""Epoch-level metric accumulation for user metrics.

A metric is either a torchmetrics-style object (``update(pred, target)``, ``compute()``,
``reset()``) or a plain callable ``fn(pred, target) -> number``, averaged over the epoch's
batches weighted by batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def _is_stateful(metric: Any) -> bool:
    return all(callable(getattr(metric, m, None)) for m in ("update", "compute", "reset"))


class MetricTracker:
    """Accumulates each named metric over one epoch on one rank."""

    def __init__(self, metrics: dict[str, Callable[..., Any]] | None) -> None:
        self.metrics = dict(metrics or {})
        self._sums: dict[str, float] = {}
        self._count = 0
        self.reset()

    def reset(self) -> None:
        self._sums = {}
        self._count = 0
        for metric in self.metrics.values():
            if _is_stateful(metric):
                metric.reset()

    def update(self, pred: Any, target: Any, with_values: bool = False) -> dict[str, float]:
        """Add one batch; return its per-batch values of the plain callables (and, with
        ``with_values``, of torchmetrics-style objects too: their ``forward`` both
        accumulates and returns the batch's value)."""
        if not self.metrics:
            return {}
        n = len(target) if hasattr(target, "__len__") else 1
        batch: dict[str, float] = {}
        with torch.no_grad():
            for name, metric in self.metrics.items():
                if _is_stateful(metric) and with_values and callable(metric):
                    batch[name] = float(metric(pred, target))
                elif _is_stateful(metric):
                    metric.update(pred, target)
                else:
                    value = float(metric(pred, target))
                    batch[name] = value
                    self._sums[name] = self._sums.get(name, 0.0) + value * n
        self._count += n
        return batch

    def compute(self) -> dict[str, float]:
        """This rank's epoch values."""
        out: dict[str, float] = {}
        for name, metric in self.metrics.items():
            if _is_stateful(metric):
                out[name] = float(metric.compute())
            elif self._count:
                out[name] = self._sums.get(name, 0.0) / self._count
        return out
