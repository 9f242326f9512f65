"""The strategies a trial's workers run under RayTorchTrainer, with itwinai's class names.

Ray Train creates each trial's process group; these strategies adopt it exactly as ``ddp``
and ``deepspeed`` adopt torchrun's. They exist so that a trainer written for itwinai can
ask ``isinstance(self.strategy, RayDeepSpeedStrategy)`` (e.g. to pass ``config_params``):
:func:`as_ray_strategy` swaps them in when a trial starts. Nothing here imports Ray.
"""

from __future__ import annotations

from itwinai_ray.distributed.base import Strategy
from itwinai_ray.distributed.ddp import TorchDDPStrategy
from itwinai_ray.distributed.deepspeed import DeepSpeedStrategy


class RayTorchDistributedStrategy:
    """Marker of the strategies that run in a Ray Train worker group (itwinai's base name)."""


class RayDDPStrategy(TorchDDPStrategy, RayTorchDistributedStrategy):
    """``ddp`` in a trial's Ray Train worker group."""


class RayDeepSpeedStrategy(DeepSpeedStrategy, RayTorchDistributedStrategy):
    """``deepspeed`` in a trial's Ray Train worker group."""


_RAY_EQUIVALENT: dict[type[Strategy], type[Strategy]] = {
    TorchDDPStrategy: RayDDPStrategy,
    DeepSpeedStrategy: RayDeepSpeedStrategy,
}


def as_ray_strategy(strategy: Strategy) -> Strategy:
    """The Ray equivalent of ``strategy``, with the same settings (itself if there is none)."""
    ray_cls = _RAY_EQUIVALENT.get(type(strategy))
    return ray_cls(**strategy.settings) if ray_cls is not None else strategy
