"""itwinai 0.4 constructor arguments of TorchTrainer that have no effect of their own here.

A config written for itwinai passes them; each is accepted, checked the way itwinai checks
it, and either does the nearest sensible thing or is noted once in the log. The table in
docs/itwinai-compat.md lists what each one does here.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ConfigurationError

log = logging.getLogger(__name__)

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
