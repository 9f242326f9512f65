"""Trainers: TorchTrainer (single process, torchrun, srun) and RayTorchTrainer (HPO on Ray)."""

from __future__ import annotations

from typing import Any

from .checkpoint import load_checkpoint, save_checkpoint
from .torch_trainer import TorchTrainer

__all__ = ["RayTorchTrainer", "TorchTrainer", "load_checkpoint", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    # Lazy: ray_trainer imports the tuning package, which imports torch_trainer.
    if name == "RayTorchTrainer":
        from .ray_trainer import RayTorchTrainer

        return RayTorchTrainer
    raise AttributeError(f"module 'itwinai_ray.trainer' has no attribute {name!r}")
