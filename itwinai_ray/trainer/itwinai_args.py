"""itwinai 0.4 constructor arguments of TorchTrainer that have no effect of their own here.

A config written for itwinai passes them; each is accepted, checked the way itwinai checks
it, and either does the nearest sensible thing or is noted once in the log. The table in
docs/itwinai-compat.md lists what each one does here.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

log = logging.getLogger(__name__)

#: itwinai constructor arguments that TorchTrainer keeps as attributes of the same name.
ACCEPTED_ARGS = ("disable_tqdm", "measure_epoch_time", "measure_gpu_data",
                 "enable_torch_profiling", "store_torch_profiling_traces",
                 "profiling_wait_epochs", "profiling_warmup_epochs", "time_ray",
                 "ray_torch_config", "ray_data_config")

#: Arguments that only mean something under RayTorchTrainer (HPO on Ray).
RAY_ARGS = ("ray_scaling_config", "ray_tune_config", "ray_run_config", "ray_search_space",
            "ray_torch_config", "ray_data_config")

#: Arguments accepted for itwinai configs; what each does here (logged once when set).
NOTES = {
    "measure_gpu_data": "GPU utilisation is not sampled by itwinai-ray; use nvidia-smi or "
                        "DCGM beside the run",
    "enable_torch_profiling": "no torch profiler is run by itwinai-ray; wrap train_step with "
                              "torch.profiler yourself",
    "time_ray": "Ray's timings are in each trial's result.json (time_this_iter_s) and in the "
                "benchmarks; nothing extra is logged",
}


def check_itwinai_args(owner: str, values: dict[str, Any]) -> None:
    """Validate the itwinai-only arguments as itwinai does, and note the ones with no effect.

    Raises:
        ConfigurationError: the combination itwinai also refuses, or a negative epoch count.
    """
    if values.get("store_torch_profiling_traces") and not values.get("enable_torch_profiling"):
        raise ConfigurationError(
            f"{owner}: store_torch_profiling_traces=True needs enable_torch_profiling=True")
    for key in ("profiling_wait_epochs", "profiling_warmup_epochs"):
        if int(values.get(key) or 0) < 0:
            raise ConfigurationError(f"{owner}: {key}={values[key]} must be >= 0")
    for key, note in NOTES.items():
        if values.get(key):
            log.info("%s: %s=True is accepted for itwinai configs: %s.", owner, key, note)


def warn_unused_ray_args(owner: str, values: dict[str, Any]) -> None:
    """Plain TorchTrainer given ray_* settings: say they need RayTorchTrainer (itwinai warns)."""
    given = [k for k in RAY_ARGS if values.get(k) is not None]
    if given:
        log.warning(
            "%s: %s %s ignored: this trainer does not run on Ray. Use itwinai_ray.RayTorchTrainer "
            "(a drop-in subclass) to tune with them.", owner, ", ".join(given),
            "is" if len(given) == 1 else "are")


def check_arguments(owner: str, values: dict[str, Any], ray_args_used: bool) -> None:
    """Every TorchTrainer argument check that needs no object built (before any is)."""
    if values["epochs"] < 1:
        raise ConfigurationError(f"{owner}: epochs={values['epochs']} must be >= 1")
    if values["checkpoint_mode"] not in ("min", "max"):
        raise ConfigurationError(
            f"{owner}: checkpoint_mode={values['checkpoint_mode']!r} must be 'min' or 'max'")
    for key in ("test_every", "validate_every", "checkpoint_every"):
        if values[key] is not None and values[key] < 1:
            raise ConfigurationError(
                f"{owner}: {key}={values[key]} must be >= 1 (or null: never)")
    check_itwinai_args(owner, values)
    if not ray_args_used:
        warn_unused_ray_args(owner, values)


def checked_checkpoint(path: Any, old_spelling: Any) -> Path | None:
    """``from_checkpoint`` (or its deprecated spelling), which must exist."""
    if old_spelling is not None:
        warnings.warn("TorchTrainer(resume_from_checkpoint=...) is deprecated: use "
                      "from_checkpoint=... (itwinai's name)", DeprecationWarning, stacklevel=4)
        path = path or old_spelling
    if path is None:
        return None
    if not Path(path).exists():
        raise ConfigurationError(
            f"from_checkpoint={str(path)!r} does not exist: give a checkpoint directory "
            f"written by the trainer (e.g. <checkpoints_location>/best, or the directory "
            f"save_checkpoint(name) returned)")
    return Path(path).resolve()  # on the driver: a trial may run in another directory
