"""Trainers written the way itwinai 0.4's tutorials and use-cases write them.

Only the import lines differ from itwinai code (``itwinai.torch.trainer`` ->
``itwinai_ray``, ``itwinai.torch.distributed`` -> ``itwinai_ray.distributed``); the class
bodies use itwinai's members. Each records what it saw under ``config.record_dir`` so the
tests can check it from outside the workers:

- :class:`LoopTrainer` (a): overrides ``train()`` like itwinai's HPO tutorial.
- :class:`StepTrainer` (b): overrides ``train_step``/``validation_step``, logs, computes metrics.
- :class:`MainWorkerTrainer` (c): a side effect under ``if self.strategy.is_main_worker:`` and
  ``gather_obj(..., dst_rank=0)``.
- :class:`DeepSpeedAwareTrainer` (d): ``isinstance(self.strategy, RayDeepSpeedStrategy)`` and
  DeepSpeed's ``config_params``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import torch
from torch import nn

from itwinai_ray import RayTorchTrainer as TorchTrainer
from itwinai_ray.distributed import RayDeepSpeedStrategy, RayTorchDistributedStrategy


def _record(trainer: Any, name: str, payload: Any) -> None:
    """Append one JSON line to ``<record_dir>/<name>.jsonl`` (O_APPEND: whole lines)."""
    out = Path(trainer.config.record_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.jsonl", "a") as fh:
        fh.write(json.dumps(payload) + "\n")


def _trial_id(trainer: Any) -> str:
    ctx = getattr(trainer.reporter, "ctx", None)
    return ctx.trial_id if ctx is not None else f"torchrun-{os.getppid()}"


class _MLPMixin:
    def build(self) -> None:
        self.model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.optim_lr)
        self.loss = nn.CrossEntropyLoss()


class LoopTrainer(TorchTrainer):
    """(a) itwinai's HPO-tutorial shape: model hook with ``strategy.distributed``, own loop."""

    def create_model_loss_optimizer(self) -> None:
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=self.config.optim_lr)
        self.model, self.optimizer, _ = self.strategy.distributed(model, optimizer)
        self.loss = nn.CrossEntropyLoss()

    def _resume_epoch(self) -> int:
        """The epoch to start from: after the one in Ray's checkpoint (a retried trial)."""
        if not isinstance(self.strategy, RayTorchDistributedStrategy):
            return 0
        checkpoint = ray.train.get_checkpoint()
        if not checkpoint:
            return 0
        with checkpoint.as_directory() as directory:
            name = "ckpt.pt" if self.config.get("report_with") != "file" else "my_state.pt"
            state = torch.load(Path(directory) / name, weights_only=False)
        return int(state["epoch"]) + 1

    def train(self) -> None:
        device = self.strategy.device()
        start = self._resume_epoch()
        _record(self, "loop_start", {"trial": _trial_id(self), "start": start,
                                     "rank": self.strategy.global_rank()})
        for self.current_epoch in range(start, self.epochs):  # noqa: B020 (itwinai's style)
            if self.config.get("fail_once") and start == 0 and self.current_epoch == 1:
                raise RuntimeError("failing once in epoch 2: the retry resumes from epoch 1's")
            self.set_epoch()
            train_losses, val_losses = [], []
            self.model.train()
            for x, y in self.train_dataloader:
                x, y = x.to(device), y.to(device)
                self.optimizer.zero_grad()
                loss = self.loss(self.model(x), y)
                loss.backward()
                self.optimizer.step()
                train_losses.append(loss.item())
            self.model.eval()
            with torch.no_grad():
                for x, y in self.validation_dataloader:
                    val_losses.append(self.loss(self.model(x.to(device)), y.to(device)).item())
            self.log(np.mean(train_losses), "train_loss", kind="metric", step=self.current_epoch)
            self.log(np.mean(val_losses), "val_loss", kind="metric", step=self.current_epoch)
            metrics = {"loss": float(np.mean(val_losses)), "seen_lr": self.config.optim_lr}
            checkpoint = {"epoch": self.current_epoch, "val_loss": float(np.mean(val_losses))}
            if self.current_epoch == 0 and self.strategy.global_rank() == 1:
                # rank 0 fails in epoch 2 while rank 1 has not reported epoch 1 yet
                time.sleep(self.config.get("slow_first_report_s", 0))
            if self.config.get("report_with") == "file":
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "my_state.pt"
                    torch.save(checkpoint, path)
                    self.ray_report(metrics=metrics, checkpoint_file=path)
            else:
                self.ray_report(metrics=metrics, checkpoint_data=checkpoint)


class StepTrainer(TorchTrainer, _MLPMixin):
    """(b) itwinai's step hooks: ``self.log`` per batch and ``self.compute_metrics``."""

    def create_model_loss_optimizer(self) -> None:
        self.build()

    def train_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, Any]]:
        x, y = batch
        x, y = x.to(self.device), y.to(self.device)
        self.optimizer.zero_grad()
        pred_y = self.model(x)
        loss = self.loss(pred_y, y)
        loss.backward()
        self.optimizer.step()
        self.log(item=loss.item(), identifier="train_loss", kind="metric",
                 step=self.train_glob_step, batch_idx=batch_idx)
        metrics = self.compute_metrics(true=y, pred=pred_y, logger_step=self.train_glob_step,
                                       batch_idx=batch_idx, stage="train")
        return loss, metrics

    def validation_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, Any]]:
        x, y = batch
        x, y = x.to(self.device), y.to(self.device)
        with torch.no_grad():
            pred_y = self.model(x)
            loss = self.loss(pred_y, y)
        self.log(item=loss.item(), identifier="validation_loss", kind="metric",
                 step=self.validation_glob_step, batch_idx=batch_idx)
        metrics = self.compute_metrics(true=y, pred=pred_y, logger_step=self.validation_glob_step,
                                       batch_idx=batch_idx, stage="validation")
        return loss, metrics


class MainWorkerTrainer(TorchTrainer, _MLPMixin):
    """(c) rank-0 work behind the ``is_main_worker`` property, objects gathered to rank 0."""

    def create_model_loss_optimizer(self) -> None:
        self.build()

    def train_epoch(self) -> torch.Tensor:
        loss = super().train_epoch()
        rank = self.strategy.global_rank()
        gathered = self.strategy.gather_obj({"rank": rank}, dst_rank=0)
        if self.strategy.is_main_worker:
            # itwinai's own train(): rank 0 alone saves and updates the best value
            path = self.save_checkpoint("best_model", best_validation_metric=loss, force=True)
            self.best_validation_metric = float(loss)
            _record(self, "main_worker", {"trial": _trial_id(self), "rank": rank,
                                          "epoch": self.current_epoch, "gathered": gathered,
                                          "world": self.strategy.global_world_size(),
                                          "distributed": self.strategy.is_distributed,
                                          "saved": Path(path).is_dir()})
        else:
            assert gathered is None, "gather_obj returned a list off the destination rank"
        return loss


class DeepSpeedAwareTrainer(TorchTrainer, _MLPMixin):
    """(d) itwinai's DeepSpeed pattern: micro-batch through ``config_params``."""

    def create_model_loss_optimizer(self) -> None:
        self.build()
        kwargs = {}
        if isinstance(self.strategy, RayDeepSpeedStrategy):
            kwargs["config_params"] = {"train_micro_batch_size_per_gpu": self.config.batch_size}
        self.model, self.optimizer, _ = self.strategy.distributed(
            self.model, self.optimizer, **kwargs)
        _record(self, "deepspeed", {"trial": _trial_id(self),
                                    "rank": self.strategy.global_rank(),
                                    "ray_deepspeed": isinstance(self.strategy,
                                                                RayDeepSpeedStrategy),
                                    "strategy": type(self.strategy).__name__,
                                    "micro_batch": self.model.train_micro_batch_size_per_gpu()})
