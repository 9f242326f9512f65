"""Trainers: TorchTrainer (single process, torchrun, srun)."""

from .checkpoint import load_checkpoint, save_checkpoint
from .torch_trainer import TorchTrainer

__all__ = ["TorchTrainer", "load_checkpoint", "save_checkpoint"]
