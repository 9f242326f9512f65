"""TrainingConfiguration: the hyperparameters a TorchTrainer reads.

Declared fields have defaults and types; any other key is accepted (``extra="allow"``) and
read by user hooks as ``self.config.my_key``. Hyperparameter search keys are checked against
this model's fields and extras, so a typo in a search space is an error, not a silent no-op.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class TrainingConfiguration(BaseModel):
    """Training hyperparameters, with itwinai's field names."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    # Data loading
    batch_size: int = 32
    shuffle_train: bool = True
    shuffle_validation: bool = False
    shuffle_test: bool = False
    pin_gpu_memory: bool = False
    num_workers_dataloader: int = 0

    # Optimisation
    # Names resolved by itwinai_ray.trainer.factories; a user hook may read any other name.
    optimizer: str = "adam"
    optim_lr: float = 1e-3
    optim_momentum: float = 0.9
    optim_betas: tuple[float, float] = (0.9, 0.999)
    optim_weight_decay: float = 0.0
    loss: str = "cross_entropy"
    lr_scheduler: str | None = None
    lr_scheduler_step_size: int = 10
    lr_scheduler_gamma: float = 0.1
    lr_scheduler_milestones: list[int] = [30, 60]
    gradient_clip_norm: float | None = None

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access that also sees extra keys."""
        return getattr(self, key, default)

    def known_keys(self) -> set[str]:
        """Declared fields plus the extra keys given to this instance."""
        return set(type(self).model_fields) | set(self.model_extra or {})
