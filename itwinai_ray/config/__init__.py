"""YAML configuration: loading, overrides, interpolation and object instantiation."""

from __future__ import annotations

import importlib
from typing import Any

from .training import TrainingConfiguration

_LAZY = {
    "load_yaml": "itwinai_ray.config.loader",
    "load_config": "itwinai_ray.config.loader",
    "load_pipeline": "itwinai_ray.config.loader",
    "instantiate": "itwinai_ray.config.instantiate",
    "apply_overrides": "itwinai_ray.config.overrides",
    "resolve_target": "itwinai_ray.config.instantiate",
    "parse_steps": "itwinai_ray.config.loader",
    "register_resolvers": "itwinai_ray.config.resolvers",
}

__all__ = ["TrainingConfiguration", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'itwinai_ray.config' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
