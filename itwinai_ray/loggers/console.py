"""Console logger: metrics and params through :mod:`logging`, other kinds into ``savedir``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from itwinai_ray.loggers.base import LogFreq, Logger, write_item

_LOG = logging.getLogger("itwinai_ray")


class ConsoleLogger(Logger):
    """Log metrics/params as compact lines on the ``itwinai_ray`` logger.

    Lines look like ``epoch 3 | train_loss=0.1234`` (epoch-level calls) or
    ``step 120 batch 20 | train_loss=0.1234`` (batch-level calls). Artifacts, torch objects,
    figures, dicts and texts are written under ``savedir/<identifier>``.
    """

    def __init__(
        self,
        savedir: str | Path = "logs",
        log_freq: LogFreq = "epoch",
        log_on_workers: int | list[int] = 0,
    ) -> None:
        super().__init__(savedir=savedir, log_freq=log_freq, log_on_workers=log_on_workers)

    def _prefix(self) -> str:
        multi = self.log_on_workers == -1 or isinstance(self.log_on_workers, list)
        return f"[rank {self.rank}] " if multi else ""

    def _open(self, rank: int, **kwargs: Any) -> None:
        _LOG.debug("%sconsole logging started", self._prefix())

    def _close(self, status: str) -> None:
        _LOG.debug("%sconsole logging ended: %s", self._prefix(), status)

    def _log_metric(
        self, name: str, value: float, step: int | None, batch_idx: int | None
    ) -> None:
        if step is None:
            where = "" if batch_idx is None else f"batch {batch_idx} | "
        elif batch_idx is None:
            where = f"epoch {step} | "
        else:
            where = f"step {step} batch {batch_idx} | "
        _LOG.info("%s%s%s=%.4g", self._prefix(), where, name, value)

    def _log_params(self, params: dict[str, Any]) -> None:
        text = ", ".join(f"{key}={value}" for key, value in params.items())
        _LOG.info("%sparams | %s", self._prefix(), text)

    def _log_object(self, kind: str, item: Any, identifier: str, step: int | None) -> None:
        path = write_item(kind, item, self.savedir / identifier)
        _LOG.info("%s%s '%s' saved to %s", self._prefix(), kind, identifier, path)
