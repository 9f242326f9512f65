"""Deprecated location of RayTorchTrainer: it is ``itwinai_ray.integrations.ray_trainer``
(or ``itwinai_ray.RayTorchTrainer``). This alias keeps older imports and class paths working."""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "RayTorchTrainer":
        warnings.warn("itwinai_ray.trainer.ray_trainer.RayTorchTrainer moved: import "
                      "itwinai_ray.RayTorchTrainer (itwinai_ray.integrations.ray_trainer)",
                      DeprecationWarning, stacklevel=2)
        from ..integrations.ray_trainer import RayTorchTrainer

        return RayTorchTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
