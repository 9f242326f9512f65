"""Integrations: how a trainer or a pipeline is tuned (the layer above the HPO core).

- :mod:`.ray_trainer`: :class:`RayTorchTrainer`, a YAML step that tunes a TorchTrainer
  (subclassed or wrapped); it holds its HPO driving, a :class:`~.hpo.TrainerHPO`.
- :mod:`.hpo`: :class:`TrainerHPO`: settings, plan, experiment, results. It stays on the
  driver; Ray Train workers get the trainer only.
- :mod:`.steps`: :func:`find_hpo_step`, which step of a pipeline (built or configured) is the
  HPO step.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RayTorchTrainer", "TrainerHPO", "find_hpo_step", "hpo_steps"]

_WHERE = {"RayTorchTrainer": "ray_trainer", "TrainerHPO": "hpo", "find_hpo_step": "steps",
          "hpo_steps": "steps"}


def __getattr__(name: str) -> Any:
    # Lazy, as the package root: importing the package never imports torch.
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
