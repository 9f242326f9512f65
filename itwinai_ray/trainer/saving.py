"""itwinai's checkpoint calls on a trainer: ``save_checkpoint(name)``, ``load_checkpoint()``
and the checkpoint that goes with ``ray_report``. The trainer's methods delegate here.

File layout: :mod:`.checkpoint`. The framework's own checkpoints (``best/``, ``epoch_<n>``
and each reported epoch) are written by every rank together through the strategy
(``TorchTrainer.write_checkpoint``); ``save_checkpoint(name)`` is itwinai's rank-0 call.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigurationError
from .checkpoint import (
    CKPT_DATA_FILE,
    MODEL_FILE,
    apply_changed_hparams,
    read_checkpoint_states,
    save_checkpoint,
)
from .epochs import scalar

log = logging.getLogger(__name__)


def checkpoint_state(trainer: Any, epoch: int, metrics: dict[str, float] | None) -> dict[str, Any]:
    """The trainer state stored beside the model (``trainer_state.json``)."""
    best = trainer.best_value
    return {"epoch": epoch, "best_value": best, "best_validation_metric": best,
            "random_seed": trainer.random_seed, "metrics": metrics or {}}


def save_named_checkpoint(trainer: Any, name: str, best_validation_metric: Any,
                          checkpoints_root: str | Path | None, force: bool) -> str | None:
    """itwinai's ``save_checkpoint``: the main worker writes ``<root>/<name>`` when forced or
    at a ``checkpoint_every`` epoch (no other rank waits); returns the path, else None."""
    periodic = bool(trainer.checkpoint_every) and (
        (trainer.current_epoch + 1) % trainer.checkpoint_every == 0)
    if not (trainer.strategy.is_main_worker and (force or periodic)):
        return None
    path = Path(checkpoints_root or trainer.checkpoints_location) / name
    if best_validation_metric is not None:
        trainer.best_validation_metric = float(scalar(best_validation_metric))
    sharded = trainer.strategy.checkpoint_on_all_ranks  # ZeRO shards need every rank
    save_checkpoint(path, trainer.strategy.unwrap(trainer.model),
                    None if sharded else trainer.optimizer,
                    None if sharded else trainer.lr_scheduler,
                    state=checkpoint_state(trainer, trainer.current_epoch, trainer.epoch_metrics),
                    config=trainer.config.model_dump())
    return str(path)


def load_into(trainer: Any, directory: str | Path | None) -> Any:
    """itwinai's ``load_checkpoint``: restore from ``directory``, else ``from_checkpoint``,
    else the checkpoint of a trial the tuner resumed. Returns the trainer state, or the object
    a ``ray_report(checkpoint_data=...)`` checkpoint holds."""
    if directory is None:
        directory = trainer.from_checkpoint or trainer.ray_checkpoint_dir
    if directory is None:
        return {}
    path = Path(directory)
    if (path / CKPT_DATA_FILE).is_file() and not (path / MODEL_FILE).is_file():
        return torch.load(path / CKPT_DATA_FILE, map_location="cpu", weights_only=False)
    if trainer.model is None:  # before create_model_loss_optimizer: itwinai's *_state_dict
        states = read_checkpoint_states(path)
        trainer.model_state_dict = states["model"]
        trainer.optimizer_state_dict = states["optimizer"]
        trainer.lr_scheduler_state_dict = states["lr_scheduler"]
        return states["state"]
    state = trainer.strategy.load_checkpoint(path, trainer.model, trainer.optimizer,
                                             trainer.lr_scheduler)
    for key, old, new in apply_changed_hparams(path, trainer.config.model_dump(),
                                               trainer.optimizer, trainer.lr_scheduler):
        log.info("Resume: %s changed from %s to %s", key, old, new)
    trainer.current_epoch = trainer.start_epoch = int(state.get("epoch", -1)) + 1
    best = state.get("best_validation_metric", state.get("best_value"))
    if best is not None:
        trainer.best_validation_metric = trainer.framework_best = float(best)
    if trainer.strategy.is_main_worker:
        log.info("Resumed from %s at epoch %d", path, trainer.current_epoch + 1)
    return state


def report_to_tuner(trainer: Any, metrics: dict[str, float], checkpoint_file: Any,
                    checkpoint_dir: Any, checkpoint_data: Any) -> None:
    """itwinai's ``ray_report``: a file kept under its name, an object saved as ``ckpt.pt``."""
    if trainer.reporter is None:
        return
    with tempfile.TemporaryDirectory(prefix="itwinai-ray-ckpt-") as tmp:
        if checkpoint_file:  # itwinai's order: a file, else an object, else a directory
            shutil.copy(checkpoint_file, tmp)
            checkpoint_dir = tmp
        elif checkpoint_data is not None:
            torch.save(checkpoint_data, Path(tmp) / CKPT_DATA_FILE)
            checkpoint_dir = tmp
        trainer.reporter.report(trainer, dict(metrics), checkpoint_dir, None)


def keep_epoch_checkpoints(trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
    """The framework's checkpoints at the end of an epoch: ``epoch_<n>`` every
    ``checkpoint_every`` epochs and ``best`` when ``checkpoint_metric`` improves.

    A collective (DeepSpeed shards): every rank decides the same, from the epoch's metrics
    (means over ranks) and ``framework_best``, never from state user code changes per rank.
    """
    if not trainer.framework_checkpoints:
        return
    targets = []
    if trainer.checkpoint_every and (epoch + 1) % trainer.checkpoint_every == 0:
        targets.append(trainer.checkpoints_location / f"epoch_{epoch + 1}")
    value = metrics.get(trainer.checkpoint_metric)
    if value is None and (trainer.save_best or trainer.checkpoint_every):
        raise ConfigurationError(
            f"checkpoint_metric={trainer.checkpoint_metric!r} is not among the epoch's "
            f"metrics: {', '.join(sorted(metrics))}")
    best = trainer.framework_best
    if value is not None and (value < best if trainer.checkpoint_mode == "min" else value > best):
        trainer.framework_best = trainer.best_validation_metric = value
        if trainer.save_best:
            targets.append(trainer.checkpoints_location / "best")
    for target in targets:
        trainer.write_checkpoint(target, epoch, metrics)


class CheckpointMethods:
    """The trainer's checkpoint and report members (itwinai 0.4's names), delegating to the
    functions above. A mixin of TorchTrainer."""

    def load_checkpoint_states(self) -> None:
        """itwinai's ``model_state_dict`` / ``optimizer_state_dict`` / ``lr_scheduler_state_dict``
        from ``from_checkpoint``, for model hooks that restore them themselves."""
        if (Path(self.from_checkpoint) / MODEL_FILE).is_file():
            states = read_checkpoint_states(self.from_checkpoint)
            self.model_state_dict = states["model"]
            self.optimizer_state_dict = states["optimizer"]
            self.lr_scheduler_state_dict = states["lr_scheduler"]

    def ray_report(self, metrics: dict[str, float], checkpoint_file: str | Path | None = None,
                   checkpoint_dir: str | Path | None = None,
                   checkpoint_data: Any | None = None) -> None:
        """Report metrics (and a checkpoint) to the tuner, as itwinai's ``ray_report``.

        For trainers that override ``train()``: call it once per epoch on every rank. The
        checkpoint is a file (``checkpoint_file``, kept under its name), a directory
        (``checkpoint_dir``) or any object (``checkpoint_data``, saved with ``torch.save`` as
        ``ckpt.pt``). Outside a tuning run this does nothing. Once a trainer reports itself,
        the framework never reports the same epoch again. A resumed trial finds the
        checkpoint with :meth:`get_ray_checkpoint_dir` (or ``ray.train.get_checkpoint()``).
        """
        report_to_tuner(self, metrics, checkpoint_file, checkpoint_dir, checkpoint_data)

    def get_ray_checkpoint_dir(self) -> str | None:
        """The checkpoint directory a resumed trial starts from (None: a fresh trial)."""
        return self.ray_checkpoint_dir

    def write_checkpoint(self, directory: str | Path, epoch: int,
                         metrics: dict[str, float] | None = None) -> Path:
        """Write a checkpoint through the strategy, on every rank together (a collective):
        the main worker writes it, or every rank its shard (DeepSpeed)."""
        return self.strategy.save_checkpoint(
            directory, self.model, self.optimizer, self.lr_scheduler,
            state=checkpoint_state(self, epoch, metrics), config=self.config.model_dump())

    def save_checkpoint(self, name: str, best_validation_metric: Any = None,
                        checkpoints_root: str | Path | None = None,
                        force: bool = False) -> str | None:
        """itwinai's checkpoint call: ``<checkpoints_root or checkpoints_location>/<name>``.

        Written by the main worker only (no other rank waits) when ``force`` is true or the
        epoch is a multiple of ``checkpoint_every``; returns the directory, else None. It
        holds model, optimizer, scheduler, state and config, and is what ``from_checkpoint``
        resumes from. With DeepSpeed it holds the model weights only; use the framework's
        checkpoints (``save_best``/``checkpoint_every``) for the ZeRO optimizer shards.
        """
        return save_named_checkpoint(self, name, best_validation_metric, checkpoints_root, force)

    def load_checkpoint(self, directory: str | Path | None = None) -> dict[str, Any]:
        """Restore model, optimizer, scheduler and the epoch counter from a checkpoint.

        ``directory`` defaults to ``from_checkpoint``, else (in a trial resumed by the tuner)
        the trial's checkpoint. Called before the model exists, it keeps the states in
        ``model_state_dict`` / ``optimizer_state_dict`` / ``lr_scheduler_state_dict``. A
        checkpoint written by ``ray_report(checkpoint_data=obj)`` returns ``obj``.
        """
        return load_into(self, directory)
