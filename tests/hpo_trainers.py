"""User trainers for the HPO tests. Each records what its worker actually saw in its metrics."""

from __future__ import annotations

from typing import Any

from itwinai_ray.examples.digits import DigitsTrainer
from itwinai_ray.integrations.ray_trainer import RayTorchTrainer


class SeenDigitsTrainer(DigitsTrainer):
    """DigitsTrainer whose epoch metrics include the lr, batch size and world size in use."""

    def train_epoch(self) -> Any:
        loss = super().train_epoch()
        metrics = self.epoch_metrics
        metrics["seen_lr"] = float(self.optimizer.param_groups[0]["lr"])
        metrics["seen_batch_size"] = float(self.train_dataloader.batch_size)
        metrics["seen_world_size"] = float(self.strategy.global_world_size())
        metrics["seen_hidden_size"] = float(self.strategy.unwrap(self.model)[0].out_features)
        return loss


class SubclassedHPOTrainer(RayTorchTrainer):
    """Mode (a): a user trainer that subclasses RayTorchTrainer, with its own model hook."""

    def create_model_loss_optimizer(self) -> None:
        import torch

        from itwinai_ray.examples.digits import make_mlp

        self.model = make_mlp(hidden_size=int(self.config.hidden_size))
        self.loss = torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.optim_lr)

    def train_epoch(self) -> Any:
        loss = super().train_epoch()
        self.epoch_metrics["seen_lr"] = float(self.optimizer.param_groups[0]["lr"])
        self.epoch_metrics["seen_world_size"] = float(self.strategy.global_world_size())
        return loss


class SelfReportingTrainer(DigitsTrainer):
    """An itwinai-style trainer that overrides train() and reports through ray_report()."""

    def train(self) -> None:
        for self.current_epoch in range(self.current_epoch, self.epochs):  # noqa: B020 (itwinai style)
            self.set_epoch()
            loss = self.train_epoch()
            self.ray_report({"loss": loss.item(), "custom": 7.0},
                            checkpoint_data={"epoch": self.current_epoch})


class FailOnceTrainer(SeenDigitsTrainer):
    """Fails in its second epoch unless it was resumed from a checkpoint (Tune retries it).

    Records the epoch it started from, so a test sees that the retry resumed.
    """

    def train_epoch(self) -> Any:
        if self.current_epoch == 1 and self.start_epoch == 0:
            raise RuntimeError("forced failure in epoch 2 (the retry resumes)")
        loss = super().train_epoch()
        self.epoch_metrics["seen_start_epoch"] = float(self.start_epoch)
        self.epoch_metrics["seen_strategy_is_" + self.strategy.name] = 1.0
        return loss


class HorovodSeenTrainer(SeenDigitsTrainer):
    """Records what Horovod itself says on every rank: (hvd.rank(), hvd.size()) of each."""

    def train_epoch(self) -> Any:
        import horovod.torch as hvd

        loss = super().train_epoch()
        metrics = self.epoch_metrics
        seen = self.strategy.allgather_obj((hvd.rank(), hvd.size()))
        metrics["seen_hvd_ranks_sum"] = float(sum(r for r, _ in seen))
        metrics["seen_hvd_size_min"] = float(min(s for _, s in seen))
        metrics["seen_hvd_size_max"] = float(max(s for _, s in seen))
        # hvd.DistributedOptimizer keeps the wrapped class's name; it adds synchronize()
        metrics["seen_optimizer_is_hvd"] = float(callable(getattr(self.optimizer, "synchronize",
                                                                  None)))
        return loss
