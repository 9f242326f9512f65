"""Checkpoint directories: model, optimizer, LR scheduler, trainer state and config.

A checkpoint is a directory, so Ray Tune can move it between nodes as a unit::

    <dir>/model.pt          state_dict of the unwrapped model
    <dir>/optimizer.pt      optimizer state_dict (if any)
    <dir>/lr_scheduler.pt   LR scheduler state_dict (if any)
    <dir>/trainer_state.json  {"epoch": 3, "best_validation_metric": 0.12, "metrics": {...}}
    <dir>/config.yaml       the TrainingConfiguration used
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from .._yaml import yaml_safe
from ..errors import CheckpointError

MODEL_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "lr_scheduler.pt"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "config.yaml"
#: itwinai 0.4's own checkpoint: ``state.pt`` (epoch, optimizer, scheduler) beside model.pt.
ITWINAI_STATE_FILE = "state.pt"
#: Where ``ray_report(checkpoint_data=...)`` stores the object (itwinai's file name).
CKPT_DATA_FILE = "ckpt.pt"


def save_checkpoint(
    directory: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: Any = None,
    lr_scheduler: Any = None,
    state: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically: into a temporary sibling, then renamed into place."""
    target = Path(directory)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        torch.save(model.state_dict(), tmp / MODEL_FILE)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        if lr_scheduler is not None and hasattr(lr_scheduler, "state_dict"):
            torch.save(lr_scheduler.state_dict(), tmp / SCHEDULER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(state or {}, indent=2, default=float))
        if config is not None:
            (tmp / CONFIG_FILE).write_text(yaml.safe_dump(yaml_safe(config), sort_keys=False))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except OSError as exc:
        raise CheckpointError(f"Cannot write checkpoint to {target}: {exc}") from exc
    finally:
        if tmp is not None and tmp.exists():  # failed half-way: leave nothing behind
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_checkpoint(
    directory: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: Any = None,
    lr_scheduler: Any = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load the states found in ``directory`` into the given objects; return trainer state."""
    path = Path(directory)
    if not (path / MODEL_FILE).is_file():
        raise CheckpointError(
            f"{path} is not a checkpoint directory: {MODEL_FILE} is missing. Point "
            f"from_checkpoint at a directory written by TorchTrainer (e.g. "
            f"<checkpoints_location>/best or .../epoch_3)."
        )
    model.load_state_dict(torch.load(path / MODEL_FILE, map_location=map_location))
    if (path / ITWINAI_STATE_FILE).is_file() and not (path / STATE_FILE).is_file():
        return _load_itwinai_state(path, optimizer, lr_scheduler, map_location)
    if optimizer is not None and (path / OPTIMIZER_FILE).is_file():
        optimizer.load_state_dict(torch.load(path / OPTIMIZER_FILE, map_location=map_location))
    if lr_scheduler is not None and (path / SCHEDULER_FILE).is_file():
        lr_scheduler.load_state_dict(torch.load(path / SCHEDULER_FILE, weights_only=False))
    state_file = path / STATE_FILE
    return json.loads(state_file.read_text()) if state_file.is_file() else {}


def _load_itwinai_state(path: Path, optimizer: Any, lr_scheduler: Any,
                        map_location: Any) -> dict[str, Any]:
    """A checkpoint written by itwinai 0.4 (``state.pt``): optimizer, scheduler and epoch."""
    state = torch.load(path / ITWINAI_STATE_FILE, map_location=map_location,
                       weights_only=False)
    if optimizer is not None and state.get("optimizer_state_dict"):
        optimizer.load_state_dict(state["optimizer_state_dict"])
    if lr_scheduler is not None and state.get("lr_scheduler_state_dict"):
        lr_scheduler.load_state_dict(state["lr_scheduler_state_dict"])
    return {"epoch": state.get("epoch", -1),
            "best_validation_metric": state.get("best_validation_metric")}


def read_checkpoint_states(directory: str | os.PathLike,
                           map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The states in a checkpoint directory, without a model: ``model``, ``optimizer``,
    ``lr_scheduler`` (each None when absent) and ``state`` (the trainer state)."""
    path = Path(directory)
    if not (path / MODEL_FILE).is_file():
        raise CheckpointError(f"{path} is not a checkpoint directory: {MODEL_FILE} is missing.")

    def read(name: str) -> Any:
        file = path / name
        return torch.load(file, map_location=map_location, weights_only=False) \
            if file.is_file() else None

    state_file = path / STATE_FILE
    return {"model": read(MODEL_FILE), "optimizer": read(OPTIMIZER_FILE),
            "lr_scheduler": read(SCHEDULER_FILE),
            "state": json.loads(state_file.read_text()) if state_file.is_file() else {}}


#: TrainingConfiguration keys that live in an optimizer's param groups.
OPTIM_HPARAMS = {"optim_lr": "lr", "optim_weight_decay": "weight_decay",
                 "optim_momentum": "momentum"}


def apply_changed_hparams(directory: str | os.PathLike, config: dict[str, Any], optimizer: Any,
                          lr_scheduler: Any = None) -> list[tuple[str, Any, Any]]:
    """After loading optimizer state, let hyperparameters changed since the checkpoint win.

    Loading an optimizer's state restores its old learning rate. When ``config`` sets another
    value than the checkpoint's ``config.yaml`` (a PBT exploit, a resume with a new lr), the
    new value is written into the param groups (and the scheduler's base lr). Returns the
    changes as ``(key, old, new)``.
    """
    path = Path(directory) / CONFIG_FILE
    if optimizer is None or not path.is_file():
        return []
    saved = yaml.safe_load(path.read_text()) or {}
    changes = []
    for key, group_key in OPTIM_HPARAMS.items():
        new = config.get(key)
        if new is None or saved.get(key) == new:
            continue
        for group in optimizer.param_groups:
            if group_key in group:
                group[group_key] = new
        if group_key == "lr" and hasattr(lr_scheduler, "base_lrs"):
            lr_scheduler.base_lrs = [new] * len(lr_scheduler.base_lrs)
        changes.append((key, saved.get(key), new))
    return changes
