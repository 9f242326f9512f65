"""TorchTrainer lifecycle on the real digits data, single process."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from itwinai_ray.errors import CheckpointError, ConfigurationError
from itwinai_ray.examples.digits import DigitsTrainer, accuracy, make_mlp
from itwinai_ray.trainer import TorchTrainer


class RecordingLogger:
    """Duck-typed logger that records the lifecycle calls the trainer makes."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def create_logger_context(self, rank: int = 0, **_: Any) -> None:
        self.events.append(("open", rank))

    def destroy_logger_context(self, status: str = "FINISHED") -> None:
        self.events.append(("close", status))

    def save_hyperparameters(self, params: dict[str, Any]) -> None:
        self.events.append(("params", params))

    def should_log(self, batch_idx: int | None = None) -> bool:
        return batch_idx is None

    def log(self, item: Any, identifier: str, kind: str = "metric", step: int | None = None,
            batch_idx: int | None = None, **_: Any) -> None:
        self.events.append(("log", identifier, item, step))


class MeanAccuracy:
    """torchmetrics-style stateful metric (update/compute/reset)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.correct += int((pred.argmax(1) == target).sum())
        self.total += len(target)

    def compute(self) -> float:
        return self.correct / max(self.total, 1)


def test_trains_digits_and_returns_datasets_and_model(digits_split, tmp_path) -> None:
    train, val, test = digits_split
    logger = RecordingLogger()
    trainer = DigitsTrainer(config={"batch_size": 64, "optim_lr": 3e-3, "hidden_size": 64},
                            epochs=4, random_seed=0, logger=logger,
                            metrics={"acc": accuracy, "acc_stateful": MeanAccuracy()},
                            checkpoints_location=tmp_path / "ckpt")
    out = trainer.execute(train, val, test)
    assert out[0] is train and out[1] is val and out[2] is test
    assert isinstance(out[3], torch.nn.Sequential)
    hist = trainer.history
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert hist[-1]["val_acc"] > 0.85
    # the callable (batch mean) and the stateful metric (exact epoch value) agree closely
    assert abs(hist[-1]["val_acc"] - hist[-1]["val_acc_stateful"]) < 0.05
    assert hist[-1]["loss"] == hist[-1]["val_loss"]
    assert logger.events[0] == ("open", 0) and logger.events[-1] == ("close", "FINISHED")
    params = next(e[1] for e in logger.events if e[0] == "params")
    assert params["optim_lr"] == 3e-3 and params["hidden_size"] == 64
    logged = {(e[1], e[3]) for e in logger.events if e[0] == "log"}
    assert ("val_loss", 3) in logged and ("train_acc", 0) in logged
    best = json.loads((tmp_path / "ckpt" / "best" / "trainer_state.json").read_text())
    assert best["best_value"] == min(h["loss"] for h in hist)


def test_without_validation_set_uses_train_loss(digits_split) -> None:
    train, _, _ = digits_split
    trainer = TorchTrainer(model=make_mlp(), epochs=2, save_best=False)
    trainer.execute(train)
    assert "val_loss" not in trainer.history[-1]
    assert trainer.history[-1]["loss"] == trainer.history[-1]["train_loss"]


def test_checkpoint_from_one_run_resumes_in_another(digits_split, tmp_path) -> None:
    train, val, _ = digits_split
    first = DigitsTrainer(config={"optim_lr": 3e-3}, epochs=2, random_seed=0,
                          checkpoints_location=tmp_path / "a", checkpoint_every=1)
    model_a = first.execute(train, val)[3]
    ckpt = tmp_path / "a" / "epoch_2"
    assert (ckpt / "model.pt").is_file() and (ckpt / "optimizer.pt").is_file()

    second = DigitsTrainer(config={"optim_lr": 3e-3}, epochs=4, random_seed=1,
                           resume_from_checkpoint=ckpt, checkpoints_location=tmp_path / "b")
    seen: list[int] = []
    original = second.train_epoch

    def spy(epoch: int) -> dict[str, float]:
        if not seen:  # before the first resumed epoch: weights are the first run's
            for p_a, p_b in zip(model_a.parameters(), second.model.parameters()):
                assert torch.equal(p_a, p_b)
        seen.append(epoch)
        return original(epoch)

    second.train_epoch = spy  # type: ignore[method-assign]
    second.execute(train, val)
    assert seen == [2, 3], "resumed after epoch 2, not from epoch 0"
    assert second.optimizer.state_dict()["state"], "optimizer state was restored"


def test_bad_checkpoint_dir_is_a_clear_error(digits_split, tmp_path) -> None:
    trainer = TorchTrainer(model=make_mlp(), resume_from_checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match="model.pt is missing"):
        trainer.execute(digits_split[0])


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("optimizer", "adamm", "Unknown optimizer 'adamm'.*Did you mean 'adam'"),
     ("loss", "crossentropy", "Unknown loss 'crossentropy'.*cross_entropy"),
     ("lr_scheduler", "cosin", "Unknown LR scheduler 'cosin'")],
)
def test_unknown_names_fail_before_training(digits_split, key, value, match) -> None:
    trainer = TorchTrainer(model=make_mlp(), config={key: value})
    with pytest.raises(ConfigurationError, match=match):
        trainer.execute(digits_split[0])


def test_lr_scheduler_steps(digits_split) -> None:
    trainer = TorchTrainer(model=make_mlp(), epochs=2, save_best=False,
                           config={"lr_scheduler": "step", "lr_scheduler_step_size": 1,
                                   "lr_scheduler_gamma": 0.5, "optim_lr": 0.01})
    trainer.execute(digits_split[0])
    # As itwinai: set_epoch() steps the scheduler at the start of each epoch after the first,
    # so epoch 2 trained at 0.01 * 0.5.
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)


def test_cleanup_runs_when_a_hook_raises(digits_split) -> None:
    class Broken(DigitsTrainer):
        def train_step(self, batch: Any, batch_idx: int) -> Any:
            raise RuntimeError("boom in train_step")

    logger = RecordingLogger()
    with pytest.raises(RuntimeError, match="boom"):
        Broken(logger=logger).execute(digits_split[0])
    assert logger.events[-1] == ("close", "FAILED")


def test_custom_hooks_and_extra_config_keys(digits_split) -> None:
    class Custom(TorchTrainer):
        def create_model_loss_optimizer(self) -> None:
            self.model = make_mlp(hidden_size=self.config.width)
            self.loss = torch.nn.CrossEntropyLoss()
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.config.optim_lr)

        def train_step(self, batch: Any, batch_idx: int) -> Any:
            loss, metrics = super().train_step(batch, batch_idx)
            return loss, {**metrics, "constant": 1.0}

    # "optimizer: lamb" is not a built-in name, but the user's hook does not use it: no error
    trainer = Custom(config={"width": 16, "optim_lr": 0.1, "optimizer": "lamb"}, epochs=1,
                     save_best=False)
    trainer.execute(digits_split[0])
    assert trainer.model[0].out_features == 16
    assert trainer.history[0]["train_constant"] == 1.0


def test_constructor_validation() -> None:
    with pytest.raises(ConfigurationError, match="epochs=0"):
        TorchTrainer(epochs=0)
    with pytest.raises(ConfigurationError, match="checkpoint_mode"):
        TorchTrainer(checkpoint_mode="best")
    with pytest.raises(ConfigurationError, match="batch_size"):
        TorchTrainer(config={"batch_size": "large"})


def test_validate_every_carries_validation_forward(digits_split) -> None:
    train, val, _ = digits_split
    trainer = DigitsTrainer(epochs=4, validate_every=2, save_best=False)
    trainer.execute(train, val)
    h = trainer.history
    assert all(e["loss"] == e["val_loss"] for e in h), "loss never switches to train loss"
    assert h[2]["val_loss"] == h[1]["val_loss"]  # epoch 3 not validated: carried forward
    assert h[3]["val_loss"] != h[2]["val_loss"]


def test_resume_with_a_changed_learning_rate_uses_the_new_one(digits_split, tmp_path) -> None:
    """As after a PBT exploit: the optimizer state is restored, the new lr is kept."""
    train, _, _ = digits_split
    DigitsTrainer(config={"optim_lr": 0.01}, epochs=1, checkpoints_location=tmp_path,
                  checkpoint_every=1).execute(train)
    resumed = DigitsTrainer(config={"optim_lr": 0.5}, epochs=2, save_best=False,
                            from_checkpoint=tmp_path / "epoch_1")
    resumed.execute(train)
    assert resumed.optimizer.param_groups[0]["lr"] == 0.5
    assert resumed.optimizer.state_dict()["state"], "optimizer state itself was restored"


def test_execute_twice_starts_fresh(digits_split) -> None:
    trainer = DigitsTrainer(epochs=2, save_best=False)
    trainer.execute(digits_split[0])
    trainer.execute(digits_split[0])
    assert len(trainer.history) == 2
