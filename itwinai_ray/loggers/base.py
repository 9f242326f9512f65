"""The :class:`Logger` base class: rank gating, log frequency and kind dispatch.

Constructors only store settings, so a logger pickles into a Ray worker. The run, writer or
directory is opened by :meth:`Logger.create_logger_context` on the ranks selected by
``log_on_workers`` only; on every other rank each call is a no-op.
"""

from __future__ import annotations

import json
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from itwinai_ray.errors import ConfigurationError, ItwinaiRayError

LogFreq = int | Literal["epoch", "batch"]
VALID_KINDS: tuple[str, ...] = ("metric", "param", "artifact", "torch", "figure", "dict", "text",
                                "image")
#: itwinai's other kinds and what each becomes here; None: accepted, with nothing to store
#: (a Weights & Biases ``watch``, an MLflow dataset or model version).
ITWINAI_KINDS: dict[str, str | None] = {
    "model": "torch", "best_model": "torch", "system": "metric", "carbon": "metric",
    "execution_time": "metric", "dataset": None, "watch": None, "model_version": None,
}
VALID_STATUSES: tuple[str, ...] = ("FINISHED", "FAILED", "KILLED")


def validate_log_freq(log_freq: Any) -> LogFreq:
    """Return ``log_freq`` if valid: ``"epoch"``, ``"batch"`` or an int >= 1."""
    if isinstance(log_freq, str) and log_freq in ("epoch", "batch"):
        return log_freq  # type: ignore[return-value]
    if isinstance(log_freq, int) and not isinstance(log_freq, bool):
        if log_freq >= 1:
            return log_freq
        raise ConfigurationError(
            f"The value of `log_freq` is {log_freq}, but an integer `log_freq` must be >= 1 "
            "(log every N batches)."
        )
    raise ConfigurationError(
        f"Invalid `log_freq={log_freq!r}`: use 'epoch', 'batch' or an integer >= 1."
    )


def validate_log_on_workers(log_on_workers: Any) -> int | list[int]:
    """Return ``log_on_workers`` if it is an int >= -1 or a list of such ints."""
    values = log_on_workers if isinstance(log_on_workers, list | tuple) else [log_on_workers]
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise ConfigurationError(
                f"Invalid `log_on_workers={log_on_workers!r}`: use a rank (int >= 0), a list "
                "of ranks, or -1 for all ranks."
            )
    return list(log_on_workers) if isinstance(log_on_workers, list | tuple) else log_on_workers


def flatten_dict(params: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Flatten nested mappings into one level with ``sep``-joined keys."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_dict(value, name, sep))
        else:
            flat[name] = value
    return flat


def write_item(kind: str, item: Any, path: Path) -> Path:
    """Write a non-metric ``item`` of ``kind`` to ``path``; return what was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "artifact":
        source = Path(item)
        if not source.exists():
            raise ConfigurationError(f"Cannot log artifact '{source}': no such file or directory.")
        if source.is_dir():
            shutil.copytree(source, path, dirs_exist_ok=True)
        else:
            path.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / source.name)
    elif kind == "torch":
        import torch

        torch.save(item, path)
    elif kind == "dict":
        path.write_text(json.dumps(item, indent=2, default=str))
    elif kind == "text":
        path.write_text(str(item))
    elif kind == "figure":
        if not path.suffix:
            path = path.with_suffix(".png")
        item.savefig(path)
    elif kind == "image":  # an array (H, W[, C]) or a PIL image, as itwinai logs them
        import matplotlib.image
        import numpy as np

        if not path.suffix:
            path = path.with_suffix(".png")
        matplotlib.image.imsave(path, np.asarray(item))
    else:  # pragma: no cover - callers dispatch metrics/params themselves
        raise ConfigurationError(f"Kind '{kind}' cannot be written to a file.")
    return path


def to_float(item: Any) -> float:
    """Convert a number, numpy scalar or 1-element tensor to ``float``."""
    return float(item.item() if hasattr(item, "item") else item)



def check_kind(kind: str, identifier: str) -> str | None:
    """The kind to log ``kind`` as (an itwinai kind becomes ours; None: nothing to store).

    Raises for a kind that is neither one of ``VALID_KINDS`` nor itwinai's (on every rank).
    """
    if kind in ITWINAI_KINDS:
        return ITWINAI_KINDS[kind]
    if kind not in VALID_KINDS:
        raise ConfigurationError(
            f"Unknown log kind '{kind}' for '{identifier}'. Valid kinds: "
            f"{', '.join(VALID_KINDS)}."
        )
    return kind


class Logger(ABC):
    """Base logger with the itwinai API.

    Args:
        savedir: where this logger writes (created only when the context is opened).
        log_freq: ``"epoch"`` (only calls without ``batch_idx``), ``"batch"`` (every call) or
            an int N (epoch calls and every N-th batch).
        log_on_workers: rank, list of ranks, or -1 (all ranks) that actually log.
    """

    def __init__(
        self,
        savedir: str | Path = "logs",
        log_freq: LogFreq = "epoch",
        log_on_workers: int | list[int] = 0,
    ) -> None:
        self.savedir = Path(savedir)
        self.log_freq = validate_log_freq(log_freq)
        self.log_on_workers = validate_log_on_workers(log_on_workers)
        self.rank: int | None = None
        self._active = False

    # ----- rank gating -------------------------------------------------------------------
    def is_selected(self, rank: int) -> bool:
        """Whether ``rank`` is one of the ranks that log."""
        workers = self.log_on_workers
        ranks = workers if isinstance(workers, list) else [workers]
        return -1 in ranks or rank in ranks

    @property
    def is_active(self) -> bool:
        """True between context creation and destruction on a selected rank."""
        return self._active

    def should_log(self, batch_idx: int | None = None) -> bool:
        """Apply ``log_freq`` to a call made at ``batch_idx`` (None = epoch-level call)."""
        if self.log_freq == "batch":
            return True
        if batch_idx is None:
            return True
        if self.log_freq == "epoch":
            return False
        return batch_idx % int(self.log_freq) == 0

    # ----- lifecycle ---------------------------------------------------------------------
    def create_logger_context(self, rank: int = 0, **kwargs: Any) -> None:
        """Remember ``rank`` and open the run/writer if this rank logs."""
        if self._active:
            raise ItwinaiRayError(
                f"{type(self).__name__}: the logger context is already open; call "
                "destroy_logger_context() first."
            )
        self.rank = rank
        if self.is_selected(rank):
            self._open(rank, **kwargs)
            self._active = True

    def destroy_logger_context(self, status: str = "FINISHED") -> None:
        """Close the run/writer with ``status`` (FINISHED, FAILED or KILLED)."""
        if status not in VALID_STATUSES:
            raise ConfigurationError(
                f"Invalid run status '{status}': use one of {', '.join(VALID_STATUSES)}."
            )
        if self._active:
            try:
                self._close(status)
            finally:
                self._active = False

    @contextmanager
    def start_logging(self, rank: int = 0, **kwargs: Any) -> Iterator[Logger]:
        """Open the context, yield the logger, close it (FAILED/KILLED on exceptions)."""
        self.create_logger_context(rank=rank, **kwargs)
        try:
            yield self
        except KeyboardInterrupt:
            self.destroy_logger_context("KILLED")
            raise
        except BaseException:
            self.destroy_logger_context("FAILED")
            raise
        self.destroy_logger_context("FINISHED")

    # ----- logging -----------------------------------------------------------------------
    def save_hyperparameters(self, params: dict[str, Any]) -> None:
        """Record the run's hyperparameters (nested dicts are flattened)."""
        self._check_context()
        if self._active:
            self._log_params(flatten_dict(params))

    def log(
        self,
        item: Any,
        identifier: str,
        kind: str = "metric",
        step: int | None = None,
        batch_idx: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Log ``item`` under ``identifier`` as ``kind`` (see ``VALID_KINDS``)."""
        kind = check_kind(kind, identifier)
        self._check_context()
        if kind is None or not self._active or not self.should_log(batch_idx):
            return
        if kind == "metric":
            self._log_metric(identifier, to_float(item), step, batch_idx)
        elif kind == "param":
            self._log_params({identifier: item})
        else:
            self._log_object(kind, item, identifier, step)

    def _check_context(self) -> None:
        if self.rank is None:
            raise ItwinaiRayError(
                f"{type(self).__name__} used before create_logger_context(rank=...); open the "
                "context first (or use `with logger.start_logging(rank): ...`)."
            )

    # ----- backend hooks -----------------------------------------------------------------
    @abstractmethod
    def _open(self, rank: int, **kwargs: Any) -> None:
        """Open the backend (run, writer, directory)."""

    @abstractmethod
    def _close(self, status: str) -> None:
        """Close the backend."""

    @abstractmethod
    def _log_metric(
        self, name: str, value: float, step: int | None, batch_idx: int | None
    ) -> None:
        """Record one scalar."""

    @abstractmethod
    def _log_params(self, params: dict[str, Any]) -> None:
        """Record flat parameters."""

    @abstractmethod
    def _log_object(self, kind: str, item: Any, identifier: str, step: int | None) -> None:
        """Record an artifact, torch object, figure, dict or text."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickle settings only: open handles stay in the process that opened them."""
        state = self.__dict__.copy()
        state.update({key: None for key in self._runtime_attrs()})
        state["_active"] = False
        state["rank"] = None
        return state

    def _runtime_attrs(self) -> tuple[str, ...]:
        """Attributes holding unpicklable handles (reset on pickling)."""
        return ()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(savedir='{self.savedir}', log_freq={self.log_freq!r}, "
            f"log_on_workers={self.log_on_workers!r})"
        )
