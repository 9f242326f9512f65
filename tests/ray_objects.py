"""The Ray objects of a searcher/scheduler spec, for tests that look inside them: the HPO
core resolves the spec, the Ray backend builds it (as the driver does)."""

from __future__ import annotations

from itwinai_ray.backends.ray.tune_objects import (
    build_algorithms,
    build_scheduler,
    build_searcher,
)
from itwinai_ray.backends.ray.tune_objects import param_space as ray_space

__all__ = ["build_algorithms", "build_scheduler", "build_searcher", "ray_space"]
