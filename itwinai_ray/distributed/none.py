"""Single-process strategy: rank 0 of a world of 1, collectives are identities."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from itwinai_ray.distributed.base import Strategy


class NonDistributedStrategy(Strategy):
    """Run in one process; ``strategy: none``."""

    name: ClassVar[str] = "none"
    is_distributed: ClassVar[bool] = False

    def init(self) -> None:
        """Mark as initialized; there is no process group."""
        self._initialized = True

    def clean_up(self) -> None:
        """Nothing to release."""
        self._initialized = False

    def distributed(
        self, model: nn.Module, optimizer: Any = None, lr_scheduler: Any = None, **kwargs: Any
    ) -> tuple[Any, Any, Any]:
        """Move the model to :meth:`device`; optimizer and scheduler are returned as is
        (``kwargs``, another strategy's options, are ignored, as in itwinai)."""
        return model.to(self.device()), optimizer, lr_scheduler

    def global_rank(self) -> int:
        """Always 0."""
        return 0

    def local_rank(self) -> int:
        """Always 0."""
        return 0

    def global_world_size(self) -> int:
        """Always 1."""
        return 1

    def local_world_size(self) -> int:
        """Always 1."""
        return 1

    def barrier(self) -> None:
        """Nothing to wait for."""

    def allgather_obj(self, obj: Any) -> list[Any]:
        """``[obj]``."""
        return [obj]

    def allgather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """``[tensor]``."""
        return [tensor]

    def reduce_mean(self, value: float) -> float:
        """``value`` itself."""
        return float(value)

