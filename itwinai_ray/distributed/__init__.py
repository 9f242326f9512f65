"""Distributed strategies: one base class, one module per backend, a name registry."""

from itwinai_ray.distributed.base import Strategy
from itwinai_ray.distributed.ddp import LaunchEnv, TorchDDPStrategy, read_launch_env
from itwinai_ray.distributed.deepspeed import DeepSpeedStrategy
from itwinai_ray.distributed.horovod import HorovodStrategy
from itwinai_ray.distributed.none import NonDistributedStrategy
from itwinai_ray.distributed.ray_strategies import (
    RayDDPStrategy,
    RayDeepSpeedStrategy,
    RayTorchDistributedStrategy,
    as_ray_strategy,
)
from itwinai_ray.distributed.registry import (
    STRATEGIES,
    StrategySpec,
    available_strategies,
    get_strategy,
)
from itwinai_ray.distributed.torch_dist import TorchDistributedStrategy

__all__ = [
    "STRATEGIES",
    "DeepSpeedStrategy",
    "HorovodStrategy",
    "LaunchEnv",
    "NonDistributedStrategy",
    "RayDDPStrategy",
    "RayDeepSpeedStrategy",
    "RayTorchDistributedStrategy",
    "Strategy",
    "StrategySpec",
    "TorchDDPStrategy",
    "TorchDistributedStrategy",
    "as_ray_strategy",
    "available_strategies",
    "get_strategy",
    "read_launch_env",
]
