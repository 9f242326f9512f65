"""TrainingConfiguration: the hyperparameters a TorchTrainer reads.

Field names and defaults are itwinai 0.4's, so a ported config trains the same way. Two
defaults differ on purpose, listed in docs/itwinai-compat.md: ``num_workers_dataloader`` is 0
(itwinai: 4 loader processes per rank) and ``dist_backend`` is ``auto`` (itwinai: ``nccl``,
which fails on a CPU-only machine).

Declared fields have defaults and types; any other key is accepted (``extra="allow"``) and
read by user hooks as ``self.config.my_key`` or ``self.config["my_key"]``. Hyperparameter
search keys are checked against this model's fields and extras, so a typo in a search space is
an error, not a silent no-op.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigurationError


class TrainingConfiguration(BaseModel):
    """Training hyperparameters, with itwinai 0.4's field names and defaults."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    # Data loading
    batch_size: int = 32
    shuffle_train: bool = False
    shuffle_validation: bool = False
    shuffle_test: bool = False
    pin_gpu_memory: bool = False
    #: itwinai's default is 4; 0 (load in the training process) suits laptops and Ray workers.
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
    #: Epochs between steps of ``step``; for ``multistep`` a list of milestones (as itwinai).
    lr_scheduler_step_size: int | list[int] = 10
    lr_scheduler_gamma: float = 0.95
    #: Milestones of ``multistep`` when ``lr_scheduler_step_size`` is a single number.
    lr_scheduler_milestones: list[int] = [30, 60]
    gradient_clip_norm: float | None = None

    # Distributed (itwinai's names; Horovod's DistributedOptimizer reads the first three)
    fp16_allreduce: bool = False
    use_adasum: bool = False
    gradient_predivide_factor: float = 1.0
    #: Process-group backend for ``strategy: ddp | deepspeed`` given by name. ``auto``: nccl
    #: with CUDA, gloo without (itwinai's default ``nccl`` fails on CPU).
    dist_backend: Literal["auto", "nccl", "gloo", "mpi"] = "auto"

    def __getitem__(self, key: str) -> Any:
        """``config["batch_size"]``, as in itwinai (extra keys too)."""
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access that also sees extra keys."""
        return getattr(self, key, default)

    def known_keys(self) -> set[str]:
        """Declared fields plus the extra keys given to this instance."""
        return set(type(self).model_fields) | set(self.model_extra or {})


def make_training_config(config: Any) -> TrainingConfiguration:
    """A trainer's ``config`` argument (None, a mapping or a TrainingConfiguration) as a
    TrainingConfiguration; invalid values are a ConfigurationError naming the field."""
    if config is None:
        return TrainingConfiguration()
    if isinstance(config, TrainingConfiguration):
        return config
    if isinstance(config, dict):
        try:
            return TrainingConfiguration(**config)
        except ValidationError as exc:
            raise ConfigurationError(f"Invalid trainer config: {exc}") from None
    raise ConfigurationError(
        f"TorchTrainer config must be a dict or TrainingConfiguration, got "
        f"{type(config).__name__}")
