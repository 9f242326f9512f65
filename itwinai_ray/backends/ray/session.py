"""A TorchTrainer that runs inside a user's own Ray Tune trainable reports to that trial.

The package root plugs :func:`attach_to_tune_session` into the trainer layer's seam
(:mod:`itwinai_ray._trial_session`), so the trainer never imports this backend.
"""

from __future__ import annotations

from typing import Any

from itwinai_ray.backends.ray.trial import tune_trial_context
from itwinai_ray.tuning.trial import attach_to_trial


def attach_to_tune_session(trainer: Any) -> bool:
    """Inside a Ray Tune trial (the run_trial path): report to it. Returns True if attached.

    Called by :class:`~itwinai_ray.trainer.torch_trainer.TorchTrainer` when no reporter is
    set, once Ray is imported; outside a Tune trial it does nothing, so a trainer behaves the
    same with or without Tune around it.
    """
    ctx = tune_trial_context()
    if ctx is None:
        return False
    attach_to_trial(trainer, ctx)
    return True
