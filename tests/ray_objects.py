"""The Ray objects of a searcher/scheduler spec, for tests that look inside them.

As in a run: the HPO core resolves the spec and has the backend check it (the pre-flight
build), then the backend builds the objects the Tuner gets (``backends/ray/algorithms.py``).
"""

from __future__ import annotations

from typing import Any

from itwinai_ray.backends.ray import algorithms as ray_algorithms
from itwinai_ray.backends.ray import translate
from itwinai_ray.backends.ray.tune_objects import param_space as ray_space
from itwinai_ray.tuning import algorithms
from itwinai_ray.tuning.search_space import build_search_space


def build_searcher(spec: Any, metric: Any, mode: Any, space: Any, **kw: Any
                   ) -> tuple[Any, dict[str, Any]]:
    """``(Ray searcher or None, ray.tune param space)``."""
    choice, neutral = algorithms.resolve_searcher(spec, metric, mode, space, **kw)
    return ray_algorithms.build(choice, neutral), translate.param_space(neutral)


def build_scheduler(spec: Any, metric: Any, mode: Any, max_t: int | None = None, *,
                    search_space: Any = None) -> Any:
    """The Ray scheduler; ``search_space``: YAML or neutral."""
    neutral = build_search_space(search_space)
    choice = algorithms.resolve_scheduler(spec, metric, mode, max_t, search_space=neutral)
    return ray_algorithms.build(choice, neutral)


def build_algorithms(search_spec: Any, scheduler_spec: Any, metric: Any, mode: Any,
                     space: Any, max_t: int | None = None, **kw: Any) -> tuple[Any, Any, Any]:
    """``(Ray searcher or None, ray.tune param space, Ray scheduler)``."""
    searcher, neutral, scheduler = algorithms.resolve_algorithms(
        search_spec, scheduler_spec, metric, mode, space, max_t, **kw)
    return (ray_algorithms.build(searcher, neutral), translate.param_space(neutral),
            ray_algorithms.build(scheduler, neutral))


__all__ = ["build_algorithms", "build_scheduler", "build_searcher", "ray_space"]
