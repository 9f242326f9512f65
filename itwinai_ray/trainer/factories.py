"""Built-in optimizer, loss and LR-scheduler selection by name, from a TrainingConfiguration."""

from __future__ import annotations

from typing import Any

import torch

from itwinai_ray._suggest import did_you_mean

from ..config.training import TrainingConfiguration
from ..errors import ConfigurationError


def _lookup(table: dict[str, Any], name: str, what: str, key: str) -> Any:
    try:
        return table[name.lower()]
    except KeyError:
        hint = did_you_mean(name.lower(), table)
        raise ConfigurationError(
            f"Unknown {what} {name!r} (config key '{key}').{hint} "
            f"Available: {', '.join(sorted(table))}. For another {what}, override "
            f"create_model_loss_optimizer() in your trainer."
        ) from None


def _optimizers(cfg: TrainingConfiguration) -> dict[str, Any]:
    wd = cfg.optim_weight_decay
    return {
        "adam": lambda p: torch.optim.Adam(p, lr=cfg.optim_lr, betas=cfg.optim_betas,
                                           weight_decay=wd),
        "adamw": lambda p: torch.optim.AdamW(p, lr=cfg.optim_lr, betas=cfg.optim_betas,
                                             weight_decay=wd),
        "sgd": lambda p: torch.optim.SGD(p, lr=cfg.optim_lr, momentum=cfg.optim_momentum,
                                         weight_decay=wd),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=cfg.optim_lr,
                                                 momentum=cfg.optim_momentum, weight_decay=wd),
        "adagrad": lambda p: torch.optim.Adagrad(p, lr=cfg.optim_lr, weight_decay=wd),
    }


LOSSES: dict[str, type[torch.nn.Module]] = {
    "cross_entropy": torch.nn.CrossEntropyLoss,
    "mse": torch.nn.MSELoss,
    "l1": torch.nn.L1Loss,
    "nllloss": torch.nn.NLLLoss,
    "bce": torch.nn.BCELoss,
    "bceloss": torch.nn.BCELoss,  # itwinai's name
    "l2": torch.nn.MSELoss,  # itwinai's name
    "bce_with_logits": torch.nn.BCEWithLogitsLoss,
    "smooth_l1": torch.nn.SmoothL1Loss,
}


def _step_size(cfg: TrainingConfiguration) -> int:
    size = cfg.lr_scheduler_step_size
    return size if isinstance(size, int) else (list(size) or [10])[0]


def _milestones(cfg: TrainingConfiguration) -> list[int]:
    size = cfg.lr_scheduler_step_size
    return list(size) if isinstance(size, list) else list(cfg.lr_scheduler_milestones)


def _schedulers(cfg: TrainingConfiguration, epochs: int) -> dict[str, Any]:
    s = torch.optim.lr_scheduler
    return {
        "step": lambda o: s.StepLR(o, step_size=_step_size(cfg), gamma=cfg.lr_scheduler_gamma),
        "multistep": lambda o: s.MultiStepLR(o, milestones=_milestones(cfg),
                                             gamma=cfg.lr_scheduler_gamma),
        "constant": lambda o: s.ConstantLR(o),  # itwinai's names: constant, polynomial
        "polynomial": lambda o: s.PolynomialLR(o),
        "exponential": lambda o: s.ExponentialLR(o, gamma=cfg.lr_scheduler_gamma),
        "cosine": lambda o: s.CosineAnnealingLR(o, T_max=max(1, epochs)),
        "linear": lambda o: s.LinearLR(o, start_factor=1.0, end_factor=cfg.lr_scheduler_gamma,
                                       total_iters=max(1, epochs)),
        "plateau": lambda o: s.ReduceLROnPlateau(o, factor=cfg.lr_scheduler_gamma),
    }


def make_optimizer(cfg: TrainingConfiguration, params: Any) -> torch.optim.Optimizer:
    return _lookup(_optimizers(cfg), cfg.optimizer, "optimizer", "optimizer")(params)


def make_loss(cfg: TrainingConfiguration) -> torch.nn.Module:
    return _lookup(LOSSES, cfg.loss, "loss", "loss")()


def make_lr_scheduler(cfg: TrainingConfiguration, optimizer: torch.optim.Optimizer,
                      epochs: int) -> Any:
    if not cfg.lr_scheduler:
        return None
    factory = _lookup(_schedulers(cfg, epochs), cfg.lr_scheduler, "LR scheduler", "lr_scheduler")
    return factory(optimizer)


def validate_names(cfg: TrainingConfiguration, epochs: int = 1) -> None:
    """Fail fast on an unknown optimizer, loss or scheduler name (before any training)."""
    _lookup(_optimizers(cfg), cfg.optimizer, "optimizer", "optimizer")
    _lookup(LOSSES, cfg.loss, "loss", "loss")
    if cfg.lr_scheduler:
        _lookup(_schedulers(cfg, epochs), cfg.lr_scheduler, "LR scheduler", "lr_scheduler")
