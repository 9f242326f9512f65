"""One pass over a dataloader, and what an epoch hook returns: the trainer's epoch mechanics.

:func:`run_epoch` is the body of the built-in ``train_epoch``/``validation_epoch``/
``test_epoch``: it runs the step hook over the loader, counts itwinai's global steps, logs the
batch loss, and puts the epoch's metrics, averaged over ranks, in ``trainer.epoch_metrics``.
:func:`absorb` turns whatever an (overridden) epoch hook returned into those metrics.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch

from .metrics import MetricTracker

#: The global step counter of each stage (itwinai's names).
_COUNTERS = {"train": "train_glob_step", "val": "validation_glob_step", "test": "test_glob_step"}


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a batch (tensor, list, tuple or dict of them) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def scalar(value: Any) -> float | None:
    """A loss returned by an epoch hook (tensor, number, numpy scalar) as a float."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _needs_epoch_argument(method: Any) -> bool:
    """True for a pre-0.4 style hook ``train_epoch(self, epoch)`` (a required argument)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params)


def call_epoch_hook(trainer: Any, hook: Any) -> Any:
    """``hook()``, or ``hook(current_epoch)`` for a pre-0.4 override (with a warning)."""
    if _needs_epoch_argument(hook):
        warnings.warn(f"{type(trainer).__name__}.{hook.__name__}(self, epoch) is the pre-0.4 "
                      f"signature: define {hook.__name__}(self) and read self.current_epoch",
                      DeprecationWarning, stacklevel=3)
        return hook(trainer.current_epoch)
    return hook()


def absorb(trainer: Any, returned: Any, prefix: str) -> None:
    """An epoch hook's result: a dict of metrics, or a loss (itwinai) for ``<prefix>_loss``.

    The built-in epoch hooks already put their metrics, averaged over ranks, in
    ``trainer.epoch_metrics``; a loss returned by an override is averaged here.
    """
    if isinstance(returned, dict):
        trainer.epoch_metrics.update({k: float(v) for k, v in returned.items()})
        return
    value = scalar(returned) if returned is not None else None
    if value is not None and f"{prefix}_loss" not in trainer.epoch_metrics:
        trainer.epoch_metrics[f"{prefix}_loss"] = trainer.strategy.reduce_mean(value)


def run_epoch(trainer: Any, loader: Any, step_fn: Any, prefix: str) -> torch.Tensor:
    """Run ``step_fn`` over ``loader``; return the epoch's mean loss over ranks."""
    trainer._tracker = MetricTracker(trainer.metrics)
    loss_sum: torch.Tensor | None = None  # stays on the device: no sync per step
    sums: dict[str, float] = {}
    n_batches = 0
    counter = _COUNTERS[prefix]
    logger = trainer.logger
    for batch_idx, batch in enumerate(loader):
        loss, batch_metrics = step_fn(batch, batch_idx)
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        for key, value in (batch_metrics or {}).items():
            sums[key] = sums.get(key, 0.0) + float(value)
        n_batches += 1
        setattr(trainer, counter, getattr(trainer, counter) + 1)
        if logger is not None and logger.should_log(batch_idx):
            logger.log(float(loss.detach()), f"{prefix}_loss_batch", kind="metric",
                       step=getattr(trainer, counter), batch_idx=batch_idx)
    n = max(n_batches, 1)
    local = {f"{prefix}_loss": float(loss_sum) / n if loss_sum is not None else float("nan")}
    local.update({f"{prefix}_{k}": v / n for k, v in sums.items()})
    # Epoch-level values of the user metrics (exact for torchmetrics-style objects).
    local.update({f"{prefix}_{k}": v for k, v in trainer._tracker.compute().items()})
    # The metric everyone sees is the mean over ranks, not rank 0's local value.
    reduced = {k: trainer.strategy.reduce_mean(v) for k, v in local.items()}
    trainer.epoch_metrics.update(reduced)
    trainer._tracker = MetricTracker(None)  # compute_metrics outside an epoch: values only
    return torch.tensor(reduced[f"{prefix}_loss"])


def evaluate_epoch(trainer: Any, loader: Any, step_fn: Any, prefix: str) -> torch.Tensor | None:
    """A validation or test pass: eval mode, no gradients; None without a loader."""
    if loader is None:
        return None
    trainer.model.eval()
    with torch.no_grad():
        return run_epoch(trainer, loader, step_fn, prefix)
