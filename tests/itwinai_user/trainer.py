"""A trainer written for itwinai 0.4, in its HPO tutorial's shape, with no change at all:
``itwinai-ray exec-pipeline`` serves the ``itwinai.*`` imports when itwinai is absent."""

import numpy as np
import torch
from itwinai.torch.distributed import RayDeepSpeedStrategy
from itwinai.torch.trainer import TorchTrainer
from torch import nn


class DigitsHPOTrainer(TorchTrainer):
    def create_model_loss_optimizer(self) -> None:
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=self.config.optim_lr)
        distribute_kwargs = {}
        if isinstance(self.strategy, RayDeepSpeedStrategy):
            distribute_kwargs = dict(
                config_params=dict(train_micro_batch_size_per_gpu=self.config.batch_size))
        self.model, self.optimizer, _ = self.strategy.distributed(
            model, optimizer, **distribute_kwargs)
        self.loss = nn.CrossEntropyLoss()

    def train(self) -> None:
        device = self.strategy.device()
        for self.current_epoch in range(self.epochs):  # noqa: B020 (itwinai tutorial style)
            self.set_epoch()
            train_losses, val_losses = [], []
            self.model.train()
            for images, labels in self.train_dataloader:
                images, labels = images.to(device), labels.to(device)
                outputs = self.model(images)
                train_loss = self.loss(outputs, labels)
                self.optimizer.zero_grad()
                train_loss.backward()
                self.optimizer.step()
                train_losses.append(train_loss.detach().cpu().numpy())
            self.model.eval()
            with torch.no_grad():
                for images, labels in self.validation_dataloader:
                    images, labels = images.to(device), labels.to(device)
                    val_loss = self.loss(self.model(images), labels)
                    val_losses.append(val_loss.detach().cpu().numpy())
            self.log(np.mean(train_losses), "train_loss", kind="metric", step=self.current_epoch)
            self.log(np.mean(val_losses), "val_loss", kind="metric", step=self.current_epoch)
            if self.strategy.is_main_worker:
                print(f"epoch {self.current_epoch}: val_loss {np.mean(val_losses):.4f}")
            checkpoint = {"epoch": self.current_epoch, "loss": train_loss, "val_loss": val_loss}
            metrics = {"loss": val_loss.item()}
            self.ray_report(metrics=metrics, checkpoint_data=checkpoint)
