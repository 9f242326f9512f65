"""Trainers: TorchTrainer (single process, torchrun, srun), its lifecycle and checkpoints.

``RayTorchTrainer`` (HPO on Ray) lives in :mod:`itwinai_ray.integrations`; the name here is a
deprecated alias.
"""

from __future__ import annotations

from typing import Any

from .checkpoint import load_checkpoint, save_checkpoint
from .torch_trainer import TorchTrainer

__all__ = ["RayTorchTrainer", "TorchTrainer", "load_checkpoint", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    # Deprecated alias, lazy: RayTorchTrainer lives in itwinai_ray.integrations (above the
    # HPO core, which this package never imports).
    if name == "RayTorchTrainer":
        from . import ray_trainer

        return ray_trainer.RayTorchTrainer
    raise AttributeError(f"module 'itwinai_ray.trainer' has no attribute {name!r}")
