"""The Train V2 ``TorchTrainer`` a worker-group trial runs (imported in the trial process).

:func:`torch_trainer_class` gives Ray's ``TorchTrainer``, or, when the experiment has a
placement-group registry, a subclass without Ray's placement-group cleaner, whose stop at
the end of each run held the trial (and its Tune slot) up to 12 s after its worker group
was gone (issue 19; see :func:`._private.without_placement_group_cleaner`). The registry
(:mod:`.registry`, :mod:`.release`) removes the placement group of a trial that is killed
before its run ends, as Ray's cleaner would, without needing the dashboard.
"""

from __future__ import annotations

from typing import Any

from ray.train.torch import TorchTrainer

from itwinai_ray.backends.ray import _private


class RegistryTorchTrainer(TorchTrainer):
    """Ray's ``TorchTrainer`` less Ray's placement-group cleaner (the registry does that job)."""

    def _create_default_callbacks(self) -> list[Any]:
        return _private.without_placement_group_cleaner(super()._create_default_callbacks())


def torch_trainer_class(has_registry: bool) -> type:
    """The trainer class of a trial: without Ray's cleaner only when a registry stands in."""
    return RegistryTorchTrainer if has_registry else TorchTrainer
