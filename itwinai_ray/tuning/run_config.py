"""The validation of ``run_config`` as a pydantic model (errors name the key and the fix).

Fields are ``Any`` and checked by their validators in the order declared, so YAML values are
never coerced ("1" stays a string and is refused) and the first bad key is the one reported.
:meth:`RunSettings.from_any <itwinai_ray.tuning.settings.RunSettings.from_any>` flattens Ray
config objects, rejects unknown keys and then validates here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator

from ..errors import ConfigurationError
from .fail_fast import parse_mode


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value == value and value not in (float("inf"), float("-inf")))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RunConfigModel(BaseModel):
    """``run_config`` as given (after :meth:`RunSettings.from_any` flattened Ray objects)."""

    storage_path: Any = "ray_results"
    name: Any = None
    checkpoint_frequency: Any = 1
    checkpoint_num_to_keep: Any = None
    max_failures: Any = 0
    worker_max_failures: Any = 0
    resume: Any = False
    fail_fast: Any = "auto"
    min_free_disk_gb: Any = 1.0
    verbose: Any = 0
    progress: Any = True
    mlflow: Any = True

    @field_validator("storage_path")
    @classmethod
    def _storage_path(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(
                f"run_config.storage_path is {value!r}, but must be a directory path (shared "
                f"by all nodes on a multi-node cluster).")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or not value.strip()
                                  or "/" in value or value in (".", "..")):
            raise ConfigurationError(
                f"run_config.name is {value!r}, but must be a directory name (no '/') or null "
                f"(an automatic <trainer>_<timestamp> name).")
        return value

    @field_validator("checkpoint_frequency", "checkpoint_num_to_keep")
    @classmethod
    def _checkpoints(cls, value: Any, info: ValidationInfo) -> Any:
        key = info.field_name
        if value is not None and not _is_int(value):
            raise ConfigurationError(f"run_config.{key} is {value!r}, but must be an integer.")
        if key == "checkpoint_frequency" and value < 1:
            raise ConfigurationError(
                f"run_config.checkpoint_frequency is {value}, but must be >= 1 (checkpoint "
                f"every N epochs).")
        if key == "checkpoint_num_to_keep" and value is not None and value < 1:
            raise ConfigurationError(
                f"run_config.checkpoint_num_to_keep is {value}, but must be >= 1 or null "
                f"(keep all).")
        return value

    @field_validator("max_failures", "worker_max_failures")
    @classmethod
    def _retries(cls, value: Any, info: ValidationInfo) -> Any:
        if not _is_int(value) or value < -1:
            raise ConfigurationError(
                f"run_config.{info.field_name} is {value!r}, but must be an integer >= 0 "
                f"(retries), or -1 (retry forever).")
        return value

    @field_validator("resume")
    @classmethod
    def _resume(cls, value: Any) -> Any:
        if value not in (True, False, "auto"):
            raise ConfigurationError(
                f"run_config.resume is {value!r}, but must be true (continue the experiment "
                f"run_config.name after a crash), 'auto' (continue it if it exists) or false.")
        return value

    @field_validator("fail_fast")
    @classmethod
    def _fail_fast(cls, value: Any, info: ValidationInfo) -> Any:
        if parse_mode(value) is None:
            raise ConfigurationError(
                f"run_config.fail_fast is {value!r}, but must be true or false (stop at the "
                f"first trial error, or never), or auto (the default: stop when the first 2 "
                f"trials fail alike before reporting anything).")
        retries = info.data.get("max_failures")
        if value is True and retries:
            raise ConfigurationError(
                f"run_config.fail_fast: true stops at the first trial error, so it cannot be "
                f"combined with max_failures={retries} (retries): remove one.")
        return value

    @field_validator("min_free_disk_gb")
    @classmethod
    def _disk(cls, value: Any) -> Any:
        if not is_number(value) or value < 0:
            raise ConfigurationError(
                f"run_config.min_free_disk_gb is {value!r}, but must be a number >= 0.")
        return value

    @field_validator("verbose")
    @classmethod
    def _verbose(cls, value: Any) -> Any:
        if value not in (0, 1, 2, 3) or isinstance(value, bool):
            raise ConfigurationError(
                f"run_config.verbose is {value!r}, but must be 0 (only the itwinai-ray "
                f"progress view), 1, 2 or 3 (Ray Tune's own output as well).")
        return value

    @field_validator("progress")
    @classmethod
    def _progress(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ConfigurationError(
                f"run_config.progress is {value!r}, but must be true or false.")
        return value

    @field_validator("mlflow")
    @classmethod
    def _mlflow(cls, value: Any) -> Any:
        from .mlflow_runs import MlflowSettings

        MlflowSettings.from_any(value)  # raises on a bad value, before Ray starts
        return value
