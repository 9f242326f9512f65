"""The setup hooks of a TorchTrainer: dataloaders, then model, loss, optimizer and scheduler.

Members of :class:`~itwinai_ray.trainer.torch_trainer.TorchTrainer` (itwinai 0.4's names)
that users override; the defaults build everything from the config (:mod:`.factories`).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from . import factories


class SetupHooks:
    """``create_dataloaders`` and ``create_model_loss_optimizer`` with their helpers.

    A mixin of TorchTrainer, whose state (config, strategy, model, ...) it uses.
    """

    def create_dataloaders(self, train_dataset: Any, validation_dataset: Any = None,
                           test_dataset: Any = None) -> None:
        """Build the dataloaders through the strategy (DistributedSampler when distributed)."""
        cfg = self.config
        common = {"batch_size": cfg.batch_size, "num_workers": cfg.num_workers_dataloader,
                  "pin_memory": cfg.pin_gpu_memory, "seed": self.random_seed or 0,
                  "generator": self.torch_rng}
        self.train_dataloader = self.strategy.create_dataloader(
            train_dataset, shuffle=cfg.shuffle_train, **common)
        if validation_dataset is not None:
            self.validation_dataloader = self.strategy.create_dataloader(
                validation_dataset, shuffle=cfg.shuffle_validation, **common)
        if test_dataset is not None:
            self.test_dataloader = self.strategy.create_dataloader(
                test_dataset, shuffle=cfg.shuffle_test, **common)

    def create_model_loss_optimizer(self) -> None:
        """Build loss, optimizer and LR scheduler from the config, for ``self.model``.

        An override may end with ``self.strategy.distributed(...)`` as in itwinai; otherwise
        the lifecycle distributes model, optimizer and scheduler right after this hook.
        """
        if self.model is None:
            raise ConfigurationError(
                f"{type(self).__name__}: no model given. Pass model=... to the trainer, or "
                f"override create_model_loss_optimizer() to build it."
            )
        self._set_loss_from_config()
        self._set_optimizer_from_config()
        self._set_lr_scheduler_from_config()

    def _set_optimizer_from_config(self) -> None:
        """``self.optimizer`` from ``config.optimizer`` (itwinai's helper name)."""
        self.optimizer = factories.make_optimizer(self.config, self.model.parameters())

    def _set_lr_scheduler_from_config(self) -> None:
        """``self.lr_scheduler`` from ``config.lr_scheduler`` (None when unset)."""
        self.lr_scheduler = factories.make_lr_scheduler(self.config, self.optimizer, self.epochs)

    def _set_loss_from_config(self) -> None:
        """``self.loss`` from ``config.loss``."""
        self.loss = factories.make_loss(self.config)

    def get_default_distributed_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``strategy.distributed`` (DeepSpeed: the micro-batch size)."""
        return self.strategy.default_distributed_kwargs(self.config)
