"""HPO settings from YAML: scaling, tune and run configs, validated before Ray starts.

Each accepts a plain mapping (our YAML) or, for itwinai 0.4 configs, the Ray object built from
``_target_: ray.train.ScalingConfig`` / ``ray.tune.TuneConfig`` / ``ray.tune.RunConfig``: its
attributes are read, so this module never imports Ray.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from itwinai_ray._suggest import did_you_mean

from ..errors import ConfigurationError
from .fail_fast import parse_mode
from .run_config import RunConfigModel
from .run_config import is_number as _is_number


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
            hint = did_you_mean(key, allowed)
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
class TorchSettings:
    """The process group of each trial's worker group (itwinai's ``ray_torch_config``)."""

    backend: str | None = None
    timeout_s: int = 1800

    @classmethod
    def from_any(cls, value: Any) -> TorchSettings:
        names = tuple(f.name for f in dataclasses.fields(cls))
        data = _as_mapping(value, "ray_torch_config", names + ("init_method",))
        data.pop("init_method", None)  # Ray's default (env://) is the only one used here
        _check_keys(data, names, "ray_torch_config")
        settings = cls(**data)
        if settings.backend not in (None, "auto", "nccl", "gloo", "mpi"):
            raise ConfigurationError(
                f"ray_torch_config.backend is {settings.backend!r}: use nccl, gloo, mpi or null "
                f"(nccl with GPUs, else gloo).")
        if not _is_number(settings.timeout_s) or settings.timeout_s <= 0:
            raise ConfigurationError(
                f"ray_torch_config.timeout_s is {settings.timeout_s!r}, but must be > 0.")
        return settings

    def as_ray_kwargs(self) -> dict[str, Any]:
        """Arguments of ``ray.train.torch.TorchConfig``."""
        backend = None if self.backend == "auto" else self.backend
        return {"backend": backend, "timeout_s": int(self.timeout_s)}


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
    #: Per-trial stop conditions ``{key: threshold}``; see :func:`check_stop`.
    stop: dict[str, float] | None = None
    #: What ranks a trial: ``best`` (its best epoch, default), ``last`` or ``last-N-avg``
    #: (see :mod:`itwinai_ray.tuning.scope`).
    scope: str = "best"
    #: An earlier experiment (directory or results.json) whose trials seed the searcher
    #: (see :mod:`itwinai_ray.tuning.warm_start`).
    warm_start: str | None = None
    #: Whether a trial process serves the next trial (Ray's ``TuneConfig.reuse_actors``).
    #: null (default): only with 1 worker per trial. true with ``num_workers >= 2``: each
    #: trial process keeps its workers (torch imported, placement group held) for the next
    #: trial, instead of one Ray Train run per trial (see docs/performance.md).
    reuse_actors: bool | None = None

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
        if settings.time_budget_s is not None and (
                not _is_number(settings.time_budget_s) or settings.time_budget_s <= 0):
            raise ConfigurationError(
                f"tune_config.time_budget_s is {settings.time_budget_s!r}, but must be a "
                f"number of seconds > 0 or null (no limit)."
            )
        if settings.reuse_actors not in (None, True, False):
            raise ConfigurationError(
                f"tune_config.reuse_actors is {settings.reuse_actors!r}, but must be true "
                f"(trial processes and their workers serve the next trial), false or null "
                f"(the default: only with 1 worker per trial).")
        check_stop(settings.stop)
        from .scope import Scope

        return dataclasses.replace(settings, scope=str(Scope.parse(settings.scope)))


@dataclass(frozen=True)
class RunSettings:
    """Where results and checkpoints go, how often trials checkpoint, how failures retry."""

    name: str | None = None
    storage_path: str = "ray_results"
    checkpoint_frequency: int = 1
    checkpoint_num_to_keep: int | None = None
    #: Tune retries of a failed trial (any error, or its process lost), each resumed from
    #: the trial's last checkpoint.
    max_failures: int = 0
    #: Train restarts of a trial's worker group (num_workers >= 2) from its last checkpoint,
    #: in place, before the trial counts as failed (then max_failures applies).
    worker_max_failures: int = 0
    #: When to stop the whole experiment early (results so far are written): "auto" (the
    #: default) when the first 2 trials to end both errored before reporting anything with
    #: the same exception type and message (a deterministic bug; see
    #: :mod:`itwinai_ray.tuning.fail_fast`); true at the first trial error; false never.
    #: With max_failures, auto counts a trial only once its retries are used up. A Ray
    #: ``FailureConfig`` object keeps Ray's meaning (its default fail_fast=False is false).
    fail_fast: bool | str = "auto"
    #: Continue the experiment ``storage_path/name`` after a crash: True (it must exist),
    #: "auto" (continue it if it exists, else start it) or False.
    resume: bool | str = False
    #: With ``resume``: add trials until the experiment holds this many in total (its
    #: searcher goes on from what it learned; ``itwinai-ray exec-pipeline --resume
    #: --num-samples N``). Needs a searcher that keeps its state (e.g. optuna).
    add_trials_to: int | None = None
    #: Free space (GiB) that storage_path must have at the start.
    min_free_disk_gb: float = 1.0
    #: The live progress view (rich in a terminal, plain lines in logs).
    progress: bool = True
    #: Ray's own output. 0 (default): none on the terminal; Ray's driver output goes to
    #: ``<experiment>/logs/driver.log``, each trial's to ``trial.log``/``worker-<rank>.log``
    #: in its directory, Ray's process logs to ``<experiment>/logs/ray``. 1-3: Ray's output
    #: on the terminal as Ray prints it (Tune's RunConfig.verbose); ``itwinai-ray -v`` = 1.
    verbose: int = 0
    #: MLflow parent run + one child run per trial: true (sqlite store under the
    #: experiment directory), false, or {tracking_uri, experiment_name, tags}.
    mlflow: Any = True

    @classmethod
    def from_any(cls, value: Any) -> RunSettings:
        """Validated settings from YAML or a Ray ``RunConfig`` (see :mod:`.run_config`)."""
        names = tuple(RunConfigModel.model_fields)
        data = _flatten_ray_run_config(_as_mapping(value, "run_config", names))
        _check_keys(data, names, "run_config")
        data = {k: v for k, v in data.items() if v is not None or k == "name"}
        return cls(**RunConfigModel(**data).model_dump())

    def resolved_storage_path(self) -> str:
        """Absolute storage path (Ray requires one; relative paths are from the cwd)."""
        return os.path.abspath(os.path.expanduser(self.storage_path))


def _flatten_ray_run_config(data: dict[str, Any]) -> dict[str, Any]:
    """Ray ``RunConfig`` objects carry nested configs: flatten the parts we use."""
    ckpt = data.pop("checkpoint_config", None)
    if ckpt is not None:
        data.setdefault("checkpoint_num_to_keep", getattr(ckpt, "num_to_keep", None))
        freq = getattr(ckpt, "checkpoint_frequency", 0)
        if freq:
            data.setdefault("checkpoint_frequency", freq)
    failure = data.pop("failure_config", None)
    if failure is not None:
        data.setdefault("max_failures", getattr(failure, "max_failures", 0))
        data.setdefault("fail_fast", bool(getattr(failure, "fail_fast", False)))
    if "fail_fast" in data:  # YAML true/false, or auto in any case
        mode = parse_mode(data["fail_fast"])
        data["fail_fast"] = data["fail_fast"] if mode is None else mode
    data.pop("time_budget_s", None)
    return data


def check_stop(stop: Any) -> None:
    """Per-trial stop conditions: ``{key: threshold}`` with numeric thresholds.

    A trial stops as soon as one condition holds. For the tuned ``metric`` the condition is
    "reached the threshold in the direction of ``mode``" (``<=`` for min, ``>=`` for max);
    for every other key (``training_iteration``, ``time_total_s``, an accuracy...) it is
    ``>=``, as in Ray Tune.
    """
    if stop is None:
        return
    if not isinstance(stop, Mapping) or not stop:
        raise ConfigurationError(
            f"tune_config.stop is {stop!r}, but must be a non-empty mapping of a reported "
            f"key to a threshold, e.g. {{val_loss: 0.1}} or {{training_iteration: 5}}."
        )
    for key, value in stop.items():
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"tune_config.stop has the key {key!r}: give a metric name.")
        if not _is_number(value):
            raise ConfigurationError(
                f"tune_config.stop.{key} is {value!r}, but must be a finite number."
            )


def pick(new: Any, legacy: Any, new_name: str, legacy_name: str) -> Any:
    """The value of an argument that also has an itwinai 0.4 name; both given is an error."""
    if new is not None and legacy is not None:
        raise ConfigurationError(
            f"Both '{new_name}' and its itwinai name '{legacy_name}' are set: keep one."
        )
    return new if new is not None else legacy
