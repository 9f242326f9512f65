"""TorchTrainer: owns the training lifecycle; users override hooks only.

Lifecycle of :meth:`TorchTrainer.execute` (the same under RayTorchTrainer, in every worker):

1. seed                                   4. ``create_dataloaders``
2. ``strategy.init()``                    5. ``create_model_loss_optimizer`` (then wrapped
3. logger context                            by ``strategy.distributed``)
6. ``train()``: per epoch ``train_epoch`` -> ``train_step``, ``validation_epoch`` ->
   ``validation_step``, LR scheduler, metrics gathered over ranks, ``on_epoch_end``
   (checkpoints, logging, reporting)
7. cleanup (logger, process group) in ``finally``
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Protocol

import torch

from ..components import Trainer
from ..config.training import TrainingConfiguration
from ..distributed import Strategy, get_strategy
from ..errors import ConfigurationError
from . import factories
from .checkpoint import apply_changed_hparams
from .metrics import MetricTracker

log = logging.getLogger(__name__)


class EpochReporter(Protocol):
    """Receives a trainer's epoch results (implemented by the tuning layer)."""

    def on_epoch_end(self, trainer: TorchTrainer, epoch: int,
                     metrics: dict[str, float]) -> None: ...

    def report(self, trainer: TorchTrainer, metrics: dict[str, float],
               checkpoint_dir: str | Path | None, checkpoint_data: dict[str, Any] | None) -> None: ...


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


class TorchTrainer(Trainer):
    """Trains a PyTorch model with a fixed lifecycle and user-overridable hooks.

    Args:
        config: hyperparameters; a dict or a :class:`TrainingConfiguration`. Unknown keys are
            kept and readable as ``self.config.<key>`` from hooks.
        epochs: number of epochs.
        model: an ``nn.Module``, or None when ``create_model_loss_optimizer`` builds it.
        strategy: ``"none"`` (default), ``"ddp"``, ``"deepspeed"``, ``"horovod"`` or a Strategy.
        random_seed: seeds torch, numpy and random on every rank.
        logger: an itwinai_ray Logger (or LoggersCollection); None logs to the console only.
        metrics: ``{name: metric}``; each is torchmetrics-style or a callable (pred, target).
        checkpoints_location: directory for ``epoch_<n>/`` and ``best/`` checkpoints.
        checkpoint_every: save ``epoch_<n>`` every N epochs (None: never); ``best/`` is kept
            whenever ``checkpoint_metric`` improves, if ``save_best`` is true.
        checkpoint_metric, checkpoint_mode: what "best" means (default: ``loss``, ``min``).
            ``loss`` is the epoch's validation loss over all ranks, or the training loss when
            there is no validation set.
        resume_from_checkpoint: a checkpoint directory to resume model, optimizer, scheduler
            and epoch counter from.
        test_every: run ``validation_epoch`` every N epochs (default every epoch), and on the
            first epoch; in between, the last validation metrics are carried forward.
    """

    def __init__(
        self,
        config: dict[str, Any] | TrainingConfiguration | None = None,
        epochs: int = 1,
        model: torch.nn.Module | None = None,
        strategy: str | Strategy | dict[str, Any] | None = "none",
        random_seed: int | None = None,
        logger: Any = None,
        metrics: dict[str, Any] | None = None,
        checkpoints_location: str | Path = "checkpoints",
        checkpoint_every: int | None = None,
        save_best: bool = True,
        checkpoint_metric: str = "loss",
        checkpoint_mode: str = "min",
        resume_from_checkpoint: str | Path | None = None,
        test_every: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if epochs < 1:
            raise ConfigurationError(f"TorchTrainer: epochs={epochs} must be >= 1")
        if checkpoint_mode not in ("min", "max"):
            raise ConfigurationError(
                f"TorchTrainer: checkpoint_mode={checkpoint_mode!r} must be 'min' or 'max'"
            )
        self.config = self._make_config(config)
        self.epochs = epochs
        self.model = model
        self.strategy_spec = strategy if strategy is not None else "none"
        self.strategy: Strategy = get_strategy(self.strategy_spec)
        self.random_seed = random_seed
        self.logger = logger
        self.metrics = metrics
        self.checkpoints_location = Path(checkpoints_location)
        self.checkpoint_every = checkpoint_every
        self.save_best = save_best
        self.checkpoint_metric = checkpoint_metric
        self.checkpoint_mode = checkpoint_mode
        self.resume_from_checkpoint = resume_from_checkpoint
        self.test_every = test_every or 1
        # Set by the lifecycle
        self.loss: Any = None
        self.optimizer: Any = None
        self.lr_scheduler: Any = None
        self.train_dataloader: Any = None
        self.validation_dataloader: Any = None
        self.test_dataloader: Any = None
        self.current_epoch = 0
        self.start_epoch = 0
        self.best_value: float | None = None
        self.history: list[dict[str, float]] = []
        self._tracker = MetricTracker(None)
        self._last_val_metrics = {}
        self.device = torch.device("cpu")
        # Set by RayTorchTrainer inside a trial's workers: receives every epoch's metrics.
        self.reporter: EpochReporter | None = None
        # In a tuning trial: the checkpoint this trial resumes from (also for ray_report users).
        self.ray_checkpoint_dir: str | None = None

    @staticmethod
    def _make_config(config: Any) -> TrainingConfiguration:
        if config is None:
            return TrainingConfiguration()
        if isinstance(config, TrainingConfiguration):
            return config
        if isinstance(config, dict):
            from pydantic import ValidationError

            try:
                return TrainingConfiguration(**config)
            except ValidationError as exc:
                raise ConfigurationError(f"Invalid trainer config: {exc}") from None
        raise ConfigurationError(
            f"TorchTrainer config must be a dict or TrainingConfiguration, got "
            f"{type(config).__name__}"
        )

    # ------------------------------------------------------------------ lifecycle
    def execute(self, train_dataset: Any, validation_dataset: Any = None,
                test_dataset: Any = None) -> tuple[Any, Any, Any, Any]:
        """Run the whole lifecycle; return the datasets and the trained (unwrapped) model."""
        if self._uses_builtin_factories():
            factories.validate_names(self.config, self.epochs)
        self._reset_run_state()
        if self.reporter is None:  # inside a Ray Tune trial (run_trial path): report to Tune
            from ..tuning.trial import attach_to_tune_session

            attach_to_tune_session(self)
        status = "FAILED"
        self._seed()
        self.strategy.init()
        self.device = self.strategy.device()  # this rank's device, for hooks
        try:
            self._open_logger()
            self.create_dataloaders(train_dataset, validation_dataset, test_dataset)
            self.create_model_loss_optimizer()
            if self.model is None:
                raise ConfigurationError(
                    f"{type(self).__name__}: no model. Pass model=... or set self.model in "
                    f"create_model_loss_optimizer()."
                )
            self.model, self.optimizer, self.lr_scheduler = self.strategy.distributed(
                self.model, self.optimizer, self.lr_scheduler
            )
            if self.resume_from_checkpoint:
                self.load_checkpoint(self.resume_from_checkpoint)
            self.train()
            status = "FINISHED"
        finally:
            self._close(status)
        return train_dataset, validation_dataset, test_dataset, self.strategy.unwrap(self.model)

    def _reset_run_state(self) -> None:
        """Each execute() starts fresh: no history, best value or epoch from an earlier run."""
        self.history = []
        self.best_value = None
        self.start_epoch = 0
        self.current_epoch = 0
        self._last_val_metrics: dict[str, float] = {}
        self.device = torch.device("cpu")

    def _uses_builtin_factories(self) -> bool:
        return type(self).create_model_loss_optimizer is TorchTrainer.create_model_loss_optimizer

    def _seed(self) -> None:
        if self.random_seed is None:
            return
        import numpy as np

        random.seed(self.random_seed)
        np.random.seed(self.random_seed)
        torch.manual_seed(self.random_seed)

    def _open_logger(self) -> None:
        if self.logger is not None:
            self.logger.create_logger_context(rank=self.strategy.global_rank())
            self.logger.save_hyperparameters(
                {**self.config.model_dump(), "epochs": self.epochs,
                 "strategy": self.strategy.name,
                 "world_size": self.strategy.global_world_size()}
            )

    def _close(self, status: str) -> None:
        try:
            if self.logger is not None:
                self.logger.destroy_logger_context(status=status)
        finally:
            self.strategy.clean_up()

    # ------------------------------------------------------------------ hooks
    def create_dataloaders(self, train_dataset: Any, validation_dataset: Any = None,
                           test_dataset: Any = None) -> None:
        """Build the dataloaders through the strategy (DistributedSampler when distributed)."""
        cfg = self.config
        common = {"batch_size": cfg.batch_size, "num_workers": cfg.num_workers_dataloader,
                  "pin_memory": cfg.pin_gpu_memory, "seed": self.random_seed or 0}
        self.train_dataloader = self.strategy.create_dataloader(
            train_dataset, shuffle=cfg.shuffle_train, **common)
        if validation_dataset is not None:
            self.validation_dataloader = self.strategy.create_dataloader(
                validation_dataset, shuffle=cfg.shuffle_validation, **common)
        if test_dataset is not None:
            self.test_dataloader = self.strategy.create_dataloader(
                test_dataset, shuffle=cfg.shuffle_test, **common)

    def create_model_loss_optimizer(self) -> None:
        """Build loss, optimizer and LR scheduler from the config, for ``self.model``."""
        if self.model is None:
            raise ConfigurationError(
                f"{type(self).__name__}: no model given. Pass model=... to the trainer, or "
                f"override create_model_loss_optimizer() to build it."
            )
        self.loss = factories.make_loss(self.config)
        self.optimizer = factories.make_optimizer(self.config, self.model.parameters())
        self.lr_scheduler = factories.make_lr_scheduler(self.config, self.optimizer, self.epochs)

    def train(self) -> None:
        """The epoch loop. Override only to replace the loop entirely."""
        for epoch in range(self.start_epoch, self.epochs):
            self.current_epoch = epoch
            self.strategy.set_epoch(self.train_dataloader, epoch)
            epoch_metrics = self.train_epoch(epoch)
            if self.validation_dataloader is not None:
                if (epoch + 1) % self.test_every == 0 or not self._last_val_metrics:
                    self._last_val_metrics = self.validation_epoch(epoch)
                # On epochs without validation the last validation values carry forward, so
                # "loss" never switches between training and validation loss.
                epoch_metrics.update(self._last_val_metrics)
            self._step_scheduler(epoch_metrics)
            epoch_metrics["loss"] = epoch_metrics.get("val_loss", epoch_metrics["train_loss"])
            self.history.append(epoch_metrics)
            self.on_epoch_end(epoch, epoch_metrics)
            if self.reporter is not None:
                self.reporter.on_epoch_end(self, epoch, epoch_metrics)

    def _step_scheduler(self, metrics: dict[str, float]) -> None:
        if self.lr_scheduler is None:
            return
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step(metrics.get("val_loss", metrics["train_loss"]))
        else:
            self.lr_scheduler.step()

    def _run_epoch(self, loader: Any, step_fn: Any, prefix: str, epoch: int) -> dict[str, float]:
        self._tracker = MetricTracker(self.metrics)
        loss_sum: torch.Tensor | None = None  # stays on the device: no sync per step
        sums: dict[str, float] = {}
        n_batches = 0
        for batch_idx, batch in enumerate(loader):
            loss, batch_metrics = step_fn(batch, batch_idx)
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
            for key, value in (batch_metrics or {}).items():
                sums[key] = sums.get(key, 0.0) + float(value)
            n_batches += 1
            if self.logger is not None and self.logger.should_log(batch_idx):
                self.logger.log(float(loss), f"{prefix}_loss_batch", kind="metric",
                                step=epoch * len(loader) + batch_idx, batch_idx=batch_idx)
        n = max(n_batches, 1)
        local = {f"{prefix}_loss": float(loss_sum) / n if loss_sum is not None else float("nan")}
        local.update({f"{prefix}_{k}": v / n for k, v in sums.items()})
        # Epoch-level values of the user metrics (exact for torchmetrics-style objects).
        local.update({f"{prefix}_{k}": v for k, v in self._tracker.compute().items()})
        # The metric everyone sees is the mean over ranks, not rank 0's local value.
        return {k: self.strategy.reduce_mean(v) for k, v in local.items()}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training data; returns ``train_*`` metrics averaged over ranks."""
        self.model.train()
        return self._run_epoch(self.train_dataloader, self.train_step, "train", epoch)

    def validation_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the validation data; returns ``val_*`` metrics averaged over ranks."""
        self.model.eval()
        with torch.no_grad():
            return self._run_epoch(self.validation_dataloader, self.validation_step, "val", epoch)

    def update_metrics(self, pred: Any, target: Any) -> dict[str, float]:
        """Feed one batch to the user metrics (call from custom train/validation steps)."""
        return self._tracker.update(pred, target) if self.metrics else {}

    def train_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One optimisation step on ``(x, y)``; returns the loss and per-batch metrics."""
        x, y = _to_device(batch, self.device)
        self.strategy.zero_grad(self.optimizer)
        pred = self.model(x)
        loss = self.loss(pred, y)
        self.strategy.backward(loss, self.model)  # DeepSpeed: engine.backward
        if self.config.gradient_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.gradient_clip_norm)
        self.strategy.optimizer_step(self.model, self.optimizer)  # DeepSpeed: engine.step
        return loss, self.update_metrics(pred.detach(), y)

    def validation_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and metrics of one validation batch (gradients are off)."""
        x, y = _to_device(batch, self.device)
        pred = self.model(x)
        return self.loss(pred, y), self.update_metrics(pred, y)

    # ------------------------------------------------------------------ epoch end
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log, checkpoint and report one epoch. RayTorchTrainer extends this to report to Tune."""
        if self.strategy.is_main_worker():
            text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            log.info("epoch %d/%d %s", epoch + 1, self.epochs, text)
        if self.logger is not None:
            for key, value in metrics.items():
                self.logger.log(value, key, kind="metric", step=epoch)
        self._maybe_checkpoint(epoch, metrics)

    def ray_report(self, metrics: dict[str, float], checkpoint_dir: str | Path | None = None,
                   checkpoint_data: dict[str, Any] | None = None) -> None:
        """Report metrics (and a checkpoint) to the tuner, as itwinai's ``ray_report`` does.

        For trainers that override ``train()`` entirely: call it once per epoch on every rank.
        ``checkpoint_dir`` is a directory to keep; ``checkpoint_data`` is a dict saved with
        ``torch.save`` as ``checkpoint.pt``. Outside a tuning run this does nothing. When a
        trainer reports itself, the framework does not report the same epoch again.
        """
        if self.reporter is not None:
            self.reporter.report(self, dict(metrics), checkpoint_dir, checkpoint_data)

    def _is_better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.checkpoint_mode == "min" else value > self.best_value

    def _maybe_checkpoint(self, epoch: int, metrics: dict[str, float]) -> None:
        targets = []
        if self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0:
            targets.append(self.checkpoints_location / f"epoch_{epoch + 1}")
        value = metrics.get(self.checkpoint_metric)
        if value is None and (self.save_best or self.checkpoint_every):
            raise ConfigurationError(
                f"checkpoint_metric={self.checkpoint_metric!r} is not among the epoch's "
                f"metrics: {', '.join(sorted(metrics))}"
            )
        if value is not None and self._is_better(value):
            self.best_value = value
            if self.save_best:
                targets.append(self.checkpoints_location / "best")
        for target in targets:
            self.save_checkpoint(target, epoch, metrics)

    def save_checkpoint(self, directory: str | Path, epoch: int,
                        metrics: dict[str, float] | None = None) -> Path:
        """Write a checkpoint through the strategy (the main worker, or every rank's shard for
        DeepSpeed); every rank waits for it."""
        return self.strategy.save_checkpoint(
            directory, self.model, self.optimizer, self.lr_scheduler,
            state={"epoch": epoch, "best_value": self.best_value, "metrics": metrics or {}},
            config=self.config.model_dump(),
        )

    def load_checkpoint(self, directory: str | Path) -> dict[str, Any]:
        """Restore model, optimizer, scheduler and the epoch counter from a checkpoint."""
        state = self.strategy.load_checkpoint(directory, self.model, self.optimizer,
                                              self.lr_scheduler)
        for key, old, new in apply_changed_hparams(directory, self.config.model_dump(),
                                                   self.optimizer, self.lr_scheduler):
            log.info("Resume: %s changed from %s to %s", key, old, new)
        self.start_epoch = int(state.get("epoch", -1)) + 1
        self.best_value = state.get("best_value")
        if self.strategy.is_main_worker():
            log.info("Resumed from %s at epoch %d", directory, self.start_epoch + 1)
        return state
