"""The digits MLP: sklearn's bundled 8x8 handwritten digits (1,797 images, offline).

``DigitsGetter`` loads the data, ``DigitsTrainer`` is an ordinary TorchTrainer subclass that
builds an MLP whose width and depth come from its config (``hidden_size``, ``num_layers``,
``dropout``), so they can be tuned like any other hyperparameter.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import TensorDataset

from ..components import DataGetter
from ..trainer import factories
from ..trainer.torch_trainer import TorchTrainer


class DigitsGetter(DataGetter):
    """Returns the digits as a TensorDataset of (64 float features in [0, 1], label)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)

    def execute(self) -> TensorDataset:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return TensorDataset(
            torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
        )


def make_mlp(in_features: int = 64, hidden_size: int = 64, num_layers: int = 2,
             dropout: float = 0.0, num_classes: int = 10) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    width = in_features
    for _ in range(max(num_layers - 1, 0)):
        layers += [torch.nn.Linear(width, hidden_size), torch.nn.ReLU()]
        if dropout:
            layers.append(torch.nn.Dropout(dropout))
        width = hidden_size
    layers.append(torch.nn.Linear(width, num_classes))
    return torch.nn.Sequential(*layers)


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float((pred.argmax(dim=1) == target).float().mean())


class DigitsTrainer(TorchTrainer):
    """A user trainer: only ``create_model_loss_optimizer`` is overridden.

    Reads ``hidden_size``, ``num_layers`` and ``dropout`` from its config (extra keys of
    TrainingConfiguration) and tracks accuracy.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("metrics", {"accuracy": accuracy})
        super().__init__(*args, **kwargs)

    def create_model_loss_optimizer(self) -> None:
        cfg = self.config
        self.model = make_mlp(hidden_size=int(cfg.get("hidden_size", 64)),
                              num_layers=int(cfg.get("num_layers", 2)),
                              dropout=float(cfg.get("dropout", 0.0)))
        self.loss = factories.make_loss(cfg)
        self.optimizer = factories.make_optimizer(cfg, self.model.parameters())
        self.lr_scheduler = factories.make_lr_scheduler(cfg, self.optimizer, self.epochs)
