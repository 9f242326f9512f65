"""Ray Tune objects from YAML-style specs, for code that drives Ray Tune itself
(``scripts/run_trial_template.py``, the benchmarks, tests that look inside a searcher).

Each function resolves the spec in the HPO core (:mod:`itwinai_ray.tuning.algorithms`, with
all its checks) and builds the Ray object here once, as the driver does when it assembles the
Tuner (so the core's pre-flight build is skipped: it would raise the same errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from itwinai_ray.backends.ray import algorithms as ray_algorithms
from itwinai_ray.backends.ray import translate
from itwinai_ray.tuning import algorithms
from itwinai_ray.tuning.search_space import build_search_space


def param_space(space: Mapping[str, Any] | None) -> dict[str, Any]:
    """A YAML search space as a ``ray.tune`` param space."""
    return translate.param_space(build_search_space(space))


def build_searcher(spec: Any, metric: Any, mode: Any, space: Mapping[str, Any] | None, *,
                   num_samples: int | None = None) -> tuple[Any, dict[str, Any]]:
    """``(Ray searcher or None for random/grid, ray.tune param space)``."""
    choice, neutral = algorithms.resolve_searcher(spec, metric, mode, space,
                                                  num_samples=num_samples, check=False)
    return ray_algorithms.build(choice, neutral), translate.param_space(neutral)


def build_scheduler(spec: Any, metric: Any, mode: Any, max_t: int | None = None, *,
                    search_space: Mapping[str, Any] | None = None) -> Any:
    """The Ray scheduler (None for ``fifo`` by name); ``search_space``: YAML or neutral, for
    PBT's mutations and PB2's bounds."""
    neutral = build_search_space(search_space)
    choice = algorithms.resolve_scheduler(spec, metric, mode, max_t, search_space=neutral,
                                          check=False)
    return ray_algorithms.build(choice, neutral)


def build_algorithms(search_spec: Any, scheduler_spec: Any, metric: Any, mode: Any,
                     space: Mapping[str, Any] | None, max_t: int | None = None, *,
                     num_samples: int | None = None) -> tuple[Any, dict[str, Any], Any]:
    """``(Ray searcher or None, ray.tune param space, Ray scheduler or None)``, checked
    together (see :func:`itwinai_ray.tuning.algorithms.pair_scheduler`)."""
    searcher, neutral, scheduler = algorithms.resolve_algorithms(
        search_spec, scheduler_spec, metric, mode, space, max_t, num_samples=num_samples,
        check=False)
    return (ray_algorithms.build(searcher, neutral), translate.param_space(neutral),
            ray_algorithms.build(scheduler, neutral))
