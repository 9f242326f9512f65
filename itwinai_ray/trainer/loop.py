"""The training loop of a TorchTrainer: the epoch loop, its epochs and steps, and epoch end.

Members of :class:`~itwinai_ray.trainer.torch_trainer.TorchTrainer` (itwinai 0.4's names),
kept in a mixin of their own; the mechanics of one epoch are in :mod:`.epochs`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from .epochs import absorb, call_epoch_hook, evaluate_epoch, run_epoch, to_device
from .metrics import MetricTracker
from .saving import keep_epoch_checkpoints

#: The trainer's log (the same name as before the loop had a module of its own).
log = logging.getLogger("itwinai_ray.trainer.torch_trainer")


class TrainingLoop:
    """``train()`` and what it calls: the epoch hooks, the step hooks, logging, epoch end.

    A mixin of TorchTrainer, whose state (model, strategy, dataloaders, ...) it uses.
    """

    def train(self) -> None:
        """The epoch loop. Override only to replace the loop entirely."""
        for epoch in range(self.current_epoch, self.epochs):
            self.current_epoch = epoch
            self._begin_epoch()  # also when an overridden set_epoch() skips super()
            call_epoch_hook(self, self.set_epoch)
            absorb(self, call_epoch_hook(self, self.train_epoch), "train")
            if self.validation_dataloader is not None:
                if (epoch + 1) % self.validate_every == 0 or not self._last_val_metrics:
                    absorb(self, call_epoch_hook(self, self.validation_epoch), "val")
                    self._last_val_metrics = {k: v for k, v in self.epoch_metrics.items()
                                              if k.startswith("val_")}
                # On epochs without validation the last validation values carry forward, so
                # "loss" never switches between training and validation loss.
                self.epoch_metrics = {**self._last_val_metrics, **self.epoch_metrics}
            if (self.test_every and (epoch + 1) % self.test_every == 0
                    and self.test_dataloader is not None):
                absorb(self, call_epoch_hook(self, self.test_epoch), "test")
            self._finish_pending_epoch()

    def set_epoch(self, epoch: int | None = None) -> None:
        """Start an epoch: step the LR scheduler (from the second epoch on) and reshuffle
        the distributed samplers. Call it first in each epoch of an overridden ``train()``.

        ``epoch`` (the pre-0.4 spelling) sets ``current_epoch``; by default it is kept.
        """
        if epoch is not None:
            self.current_epoch = epoch
        self._begin_epoch()  # ends a custom loop's previous epoch
        if self.current_epoch > 0 and self.lr_scheduler is not None and not isinstance(
                self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step()
        for loader in (self.train_dataloader, self.validation_dataloader, self.test_dataloader):
            if loader is not None:
                self.strategy.set_epoch(loader, self.current_epoch)

    def _begin_epoch(self) -> None:
        """Open ``current_epoch`` (once): end the open one, start collecting its metrics."""
        if self._pending_epoch == self.current_epoch:
            return
        self._finish_pending_epoch()
        self.epoch_metrics = {}
        self._pending_epoch = self.current_epoch

    def _finish_pending_epoch(self) -> None:
        """End the open epoch: scheduler on plateau, history, logging, checkpoints, report."""
        epoch, self._pending_epoch = self._pending_epoch, None
        metrics = self.epoch_metrics
        if epoch is None or not metrics:
            return
        if "val_loss" in metrics or "train_loss" in metrics:
            metrics["loss"] = metrics.get("val_loss", metrics.get("train_loss"))
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step(metrics.get("loss", float("nan")))
        self.history.append(dict(metrics))
        self.on_epoch_end(epoch, metrics)
        if self.reporter is not None:
            self.reporter.on_epoch_end(self, epoch, metrics)

    def train_epoch(self, epoch: int | None = None) -> torch.Tensor:
        """One pass over the training data; returns the mean training loss over ranks.

        Its metrics (``train_*``, means over ranks) are in ``self.epoch_metrics``.
        """
        self.model.train()
        return run_epoch(self, self.train_dataloader, self.train_step, "train")

    def validation_epoch(self, epoch: int | None = None) -> torch.Tensor | None:
        """One pass over the validation data (None without one); ``val_*`` metrics."""
        return evaluate_epoch(self, self.validation_dataloader, self.validation_step, "val")

    def test_epoch(self, epoch: int | None = None) -> torch.Tensor | None:
        """One pass over the test data (None without one); ``test_*`` metrics."""
        return evaluate_epoch(self, self.test_dataloader, self.test_step, "test")

    def update_metrics(self, pred: Any, target: Any) -> dict[str, float]:
        """Feed one batch to the user metrics (call from custom train/validation steps)."""
        return self._tracker.update(pred, target) if self.metrics else {}

    def compute_metrics(self, true: Any, pred: Any, logger_step: int,
                        batch_idx: int | None = None, stage: str = "train") -> dict[str, Any]:
        """itwinai's per-batch metrics: feed the user metrics, log and return the values.

        The epoch values (``<stage>_<name>``, means over ranks) follow in the epoch metrics.
        """
        pred = pred.detach() if hasattr(pred, "detach") else pred
        # In a built-in epoch its tracker also accumulates the epoch value; elsewhere (a
        # custom loop) the metrics give this batch's values only.
        tracker = self._tracker if self._tracker.metrics else MetricTracker(self.metrics)
        values = tracker.update(pred, true, with_values=True) if self.metrics else {}
        for m_name, value in values.items():
            self.log(value, f"{stage}_{m_name}", kind="metric", step=logger_step,
                     batch_idx=batch_idx)
        return values

    def train_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One optimisation step on ``(x, y)``; returns the loss and per-batch metrics."""
        x, y = to_device(batch, self.device)
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
        x, y = to_device(batch, self.device)
        pred = self.model(x)
        return self.loss(pred, y), self.update_metrics(pred, y)

    def test_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and metrics of one test batch (as ``validation_step``)."""
        return self.validation_step(batch, batch_idx)

    def log(self, item: Any, identifier: str | list[str], kind: str = "metric",
            step: int | None = None, batch_idx: int | None = None, **kwargs: Any) -> None:
        """Log ``item`` under ``identifier`` with the trainer's logger (nothing without one)."""
        if self.logger is not None:
            self.logger.log(item, identifier, kind=kind, step=step, batch_idx=batch_idx,
                            **kwargs)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log, checkpoint and report one epoch. RayTorchTrainer extends this to report to Tune."""
        if self.strategy.is_main_worker:
            text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            log.info("epoch %d/%d %s", epoch + 1, self.epochs, text)
        if self.logger is not None:
            for key, value in metrics.items():
                self.logger.log(value, key, kind="metric", step=epoch)
        keep_epoch_checkpoints(self, epoch, metrics)
