"""Forward every logger call to several loggers, each applying its own gating."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.loggers.base import VALID_STATUSES, Logger, check_kind


class LoggersCollection(Logger):
    """A logger that forwards to ``loggers`` (rank and frequency gating is theirs)."""

    def __init__(self, loggers: Iterable[Logger]) -> None:
        super().__init__(savedir=".", log_freq="batch", log_on_workers=-1)
        self.loggers = list(loggers)
        for logger in self.loggers:
            if not isinstance(logger, Logger):
                raise ConfigurationError(
                    f"LoggersCollection takes Logger instances, got {type(logger).__name__}."
                )

    def should_log(self, batch_idx: int | None = None) -> bool:
        """True if any wrapped logger would log at ``batch_idx``."""
        return any(logger.should_log(batch_idx) for logger in self.loggers)

    def create_logger_context(self, rank: int = 0, **kwargs: Any) -> None:
        """Open every logger's context; close the opened ones if one fails."""
        opened: list[Logger] = []
        try:
            for logger in self.loggers:
                logger.create_logger_context(rank=rank, **kwargs)
                opened.append(logger)
        except BaseException:
            for logger in opened:
                logger.destroy_logger_context("FAILED")
            raise
        self.rank = rank
        self._active = True

    def destroy_logger_context(self, status: str = "FINISHED") -> None:
        """Close every logger's context, even if one of them fails."""
        if status not in VALID_STATUSES:
            raise ConfigurationError(
                f"Invalid run status '{status}': use one of {', '.join(VALID_STATUSES)}."
            )
        errors: list[BaseException] = []
        for logger in self.loggers:
            try:
                logger.destroy_logger_context(status)
            except Exception as exc:  # keep closing the others
                errors.append(exc)
        self._active = False
        if errors:
            raise errors[0]

    def save_hyperparameters(self, params: dict[str, Any]) -> None:
        """Forward to every logger."""
        for logger in self.loggers:
            logger.save_hyperparameters(params)

    def log(
        self,
        item: Any,
        identifier: str,
        kind: str = "metric",
        step: int | None = None,
        batch_idx: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Forward to every logger."""
        if check_kind(kind, identifier) is None:
            return
        for logger in self.loggers:
            logger.log(item, identifier, kind=kind, step=step, batch_idx=batch_idx, **kwargs)

    # The wrapped loggers do the work; these hooks are never reached.
    def _open(self, rank: int, **kwargs: Any) -> None:  # pragma: no cover
        pass

    def _close(self, status: str) -> None:  # pragma: no cover
        pass

    def _log_metric(
        self, name: str, value: float, step: int | None, batch_idx: int | None
    ) -> None:  # pragma: no cover
        pass

    def _log_params(self, params: dict[str, Any]) -> None:  # pragma: no cover
        pass

    def _log_object(
        self, kind: str, item: Any, identifier: str, step: int | None
    ) -> None:  # pragma: no cover
        pass

    def __repr__(self) -> str:
        return f"LoggersCollection({self.loggers!r})"
