"""``itwinai.torch.trainer.TorchTrainer`` when itwinai is not installed.

itwinai 0.4's TorchTrainer runs on Ray when it is given ``ray_*`` settings and trains
directly otherwise (torchrun, srun, one process). This class keeps that: it is a
:class:`~itwinai_ray.RayTorchTrainer` whose ``execute`` runs the plain
:class:`~itwinai_ray.TorchTrainer` lifecycle when no Ray setting was given.
"""

from __future__ import annotations

from typing import Any

from ..trainer.ray_trainer import RayTorchTrainer
from ..trainer.torch_trainer import TorchTrainer as PlainTorchTrainer


class TorchTrainer(RayTorchTrainer):
    """itwinai 0.4's TorchTrainer: HPO on Ray with ``ray_*`` settings, else plain training."""

    def execute(self, train_dataset: Any, validation_dataset: Any = None,
                test_dataset: Any = None) -> tuple[Any, Any, Any, Any]:
        if self.hpo_requested:
            return super().execute(train_dataset, validation_dataset, test_dataset)
        return PlainTorchTrainer.execute(self, train_dataset, validation_dataset, test_dataset)
