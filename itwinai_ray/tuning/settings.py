"""HPO settings from YAML: scaling, tune and run configs, validated before Ray starts.

Each accepts a plain mapping (our YAML) or, for itwinai 0.4 configs, the Ray object built from
``_target_: ray.train.ScalingConfig`` / ``ray.tune.TuneConfig`` / ``ray.tune.RunConfig``: its
attributes are read, so this module never imports Ray.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError


def _as_mapping(value: Any, what: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """A plain dict from a mapping or from an object with those attributes (Ray configs)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Only what the user set: fields that differ from a default-constructed object
        # (Ray fills some in __post_init__, e.g. RunConfig.storage_path=~/ray_results).
        fresh = type(value)()
        data = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
                if getattr(value, f.name) != getattr(fresh, f.name)}
        unsupported = [k for k in data if k not in fields and k not in _RAY_ALIASES]
        if unsupported:
            raise ConfigurationError(
                f"{type(value).__name__}({', '.join(unsupported)}=...) in {what} is not "
                f"supported by RayTorchTrainer and would be ignored. Supported: "
                f"{', '.join(fields)}. Remove it, or run Ray Tune directly for that feature."
            )
        return data
    raise ConfigurationError(
        f"{what} must be a mapping (YAML dict) or a Ray config object, got {type(value).__name__}"
    )


# Ray attribute names that map onto ours (read from Ray config objects).
_RAY_ALIASES = {"checkpoint_config", "failure_config", "time_budget_s"}


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigurationError(
                f"Unknown key '{key}' in {what}.{hint} Accepted keys: {', '.join(allowed)}."
            )


@dataclass(frozen=True)
class ScalingSettings:
    """Workers per trial. ``num_workers: 1`` runs the trial without a worker group."""

    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = None

    @classmethod
    def from_any(cls, value: Any) -> ScalingSettings:
        names = tuple(f.name for f in dataclasses.fields(cls))
        data = _as_mapping(value, "scaling_config", names)
        _check_keys(data, names, "scaling_config")
        settings = cls(**data)
        if not isinstance(settings.num_workers, int) or settings.num_workers < 1:
            raise ConfigurationError(
                f"scaling_config.num_workers is {settings.num_workers!r}, but must be an "
                f"integer >= 1."
            )
        return settings


@dataclass(frozen=True)
class TuneSettings:
    """How many trials, what to optimise, and how to search and stop."""

    num_samples: int = 1
    metric: str | list[str] | None = None
    mode: str | list[str] | None = None
    search_alg: Any = None
    scheduler: Any = None
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None

    @classmethod
    def from_any(cls, value: Any) -> TuneSettings:
        names = tuple(f.name for f in dataclasses.fields(cls))
        data = _as_mapping(value, "tune_config", names)
        _check_keys(data, names, "tune_config")
        settings = cls(**data)
        if not isinstance(settings.num_samples, int) or settings.num_samples < 1:
            raise ConfigurationError(
                f"tune_config.num_samples is {settings.num_samples!r}, but must be an "
                f"integer >= 1 (the number of trials, or of repeats of a grid)."
            )
        if settings.max_concurrent_trials is not None and settings.max_concurrent_trials < 1:
            raise ConfigurationError(
                f"tune_config.max_concurrent_trials is {settings.max_concurrent_trials}, "
                f"but must be >= 1 or null (derived from the cluster's capacity)."
            )
        return settings


@dataclass(frozen=True)
class RunSettings:
    """Where results and checkpoints go, how often trials checkpoint, how failures retry."""

    name: str | None = None
    storage_path: str = "ray_results"
    checkpoint_frequency: int = 1
    checkpoint_num_to_keep: int | None = None
    max_failures: int = 0

    @classmethod
    def from_any(cls, value: Any) -> RunSettings:
        names = ("name", "storage_path", "checkpoint_frequency", "checkpoint_num_to_keep",
                 "max_failures")
        data = _as_mapping(value, "run_config", names)
        # Ray RunConfig objects carry nested configs: flatten the parts we use.
        ckpt = data.pop("checkpoint_config", None)
        if ckpt is not None:
            data.setdefault("checkpoint_num_to_keep", getattr(ckpt, "num_to_keep", None))
            freq = getattr(ckpt, "checkpoint_frequency", 0)
            if freq:
                data.setdefault("checkpoint_frequency", freq)
        failure = data.pop("failure_config", None)
        if failure is not None:
            data.setdefault("max_failures", getattr(failure, "max_failures", 0))
        data.pop("time_budget_s", None)
        _check_keys(data, names, "run_config")
        data = {k: v for k, v in data.items() if v is not None or k == "name"}
        settings = cls(**data)
        if settings.checkpoint_frequency < 1:
            raise ConfigurationError(
                f"run_config.checkpoint_frequency is {settings.checkpoint_frequency}, but must "
                f"be >= 1 (checkpoint every N epochs)."
            )
        if settings.checkpoint_num_to_keep is not None and settings.checkpoint_num_to_keep < 1:
            raise ConfigurationError(
                f"run_config.checkpoint_num_to_keep is {settings.checkpoint_num_to_keep}, but "
                f"must be >= 1 or null (keep all)."
            )
        return settings

    def resolved_storage_path(self) -> str:
        """Absolute storage path (Ray requires one; relative paths are from the cwd)."""
        return os.path.abspath(os.path.expanduser(self.storage_path))


def pick(new: Any, legacy: Any, new_name: str, legacy_name: str) -> Any:
    """The value of an argument that also has an itwinai 0.4 name; both given is an error."""
    if new is not None and legacy is not None:
        raise ConfigurationError(
            f"Both '{new_name}' and its itwinai name '{legacy_name}' are set: keep one."
        )
    return new if new is not None else legacy
