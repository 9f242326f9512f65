"""Strategy names -> classes. Adding a strategy is one entry in ``STRATEGIES``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from itwinai_ray._suggest import did_you_mean
from itwinai_ray.distributed.base import Strategy
from itwinai_ray.distributed.ddp import TorchDDPStrategy
from itwinai_ray.distributed.deepspeed import DeepSpeedStrategy
from itwinai_ray.distributed.horovod import HorovodStrategy
from itwinai_ray.distributed.none import NonDistributedStrategy
from itwinai_ray.errors import StrategyError

STRATEGIES: dict[str, type[Strategy]] = {
    "none": NonDistributedStrategy,
    "ddp": TorchDDPStrategy,
    "deepspeed": DeepSpeedStrategy,
    "horovod": HorovodStrategy,
}

StrategySpec = str | Strategy | type[Strategy] | Mapping[str, Any]


def available_strategies() -> list[str]:
    """Registered names, sorted."""
    return sorted(STRATEGIES)


def _lookup(name: str) -> type[Strategy]:
    key = name.strip().lower()
    if key in STRATEGIES:
        return STRATEGIES[key]
    hint = did_you_mean(key, available_strategies())
    raise StrategyError(
        f"Unknown strategy '{name}'.{hint} Available: {', '.join(available_strategies())}"
    )


def get_strategy(spec: StrategySpec) -> Strategy:
    """Build a strategy from a name, a ``{"name": ..., **kwargs}`` dict, a class or an instance.

    Names are case-insensitive. An instance is returned as is.

    Raises:
        StrategyError: unknown name (with the closest match), missing ``name`` key, bad
            keyword arguments or an unsupported spec type.
    """
    if isinstance(spec, Strategy):
        return spec
    if isinstance(spec, type) and issubclass(spec, Strategy):
        return spec()
    if isinstance(spec, str):
        return _lookup(spec)()
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if not isinstance(name, str):
            raise StrategyError(
                f"A strategy given as a mapping needs a 'name' key (one of "
                f"{', '.join(available_strategies())}); got {dict(spec)!r}"
            )
        cls = _lookup(name)
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise StrategyError(f"Invalid arguments for strategy '{cls.name}': {err}") from err
    raise StrategyError(
        f"Cannot build a strategy from {spec!r} ({type(spec).__name__}): give a name "
        f"({', '.join(available_strategies())}), a dict with 'name', or a Strategy instance"
    )
