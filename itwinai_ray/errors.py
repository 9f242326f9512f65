"""All exceptions raised by itwinai_ray share one root, :class:`ItwinaiRayError`.

Each message names what is wrong and how to fix it. The CLI prints these without a
traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class ItwinaiRayError(Exception):
    """Root of every error raised on purpose by itwinai_ray."""

    #: The CLI's exit code for it (README, "Errors"): 2 is bad input.
    exit_code = 2


class ConfigurationError(ItwinaiRayError):
    """A configuration file, key, override or value is invalid."""


class PipelineError(ItwinaiRayError):
    """Pipeline steps cannot be chained (signature mismatch, bad slice...)."""


class StrategyError(ItwinaiRayError):
    """A distributed strategy is unknown, unavailable or misused."""


class SearchSpaceError(ConfigurationError):
    """A hyperparameter search space is invalid."""


class ResourceError(ItwinaiRayError):
    """What a trial needs cannot be provided by the cluster."""


class TrialsFailedError(ItwinaiRayError):
    """Every trial of an experiment failed (exit code 4)."""

    exit_code = 4


class CheckpointError(ItwinaiRayError):
    """A checkpoint cannot be written or read."""


class MissingDependencyError(ItwinaiRayError, ImportError):
    """An optional dependency is needed but not installed."""

    def __init__(self, package: str, feature: str, extra: str | None = None) -> None:
        hint = f"pip install 'itwinai-ray[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package '{package}', which is not installed. "
                         f"Install it with: {hint}")
        self.package = package
