"""The seam between a trainer and a tuner's trial session (imports nothing of the package).

A :class:`~itwinai_ray.trainer.torch_trainer.TorchTrainer` run without a reporter asks
:func:`attach` whether it runs inside a tuner's trial (e.g. user code calling
``pipeline.execute()`` in its own Ray Tune trainable). Backends plug in with
:func:`register`; the package root registers the Ray backend's, so the trainer layer never
imports a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Callables ``attacher(trainer) -> bool``: True when they attached the trainer to a trial.
_ATTACHERS: list[Callable[[Any], bool]] = []


def register(attacher: Callable[[Any], bool]) -> None:
    """Add a backend's attacher (once)."""
    if attacher not in _ATTACHERS:
        _ATTACHERS.append(attacher)


def attach(trainer: Any) -> bool:
    """Attach ``trainer`` to the trial session it runs in, if any. Returns True if attached."""
    return any(attacher(trainer) for attacher in _ATTACHERS)
