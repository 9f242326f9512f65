"""The ``ray.tune`` side of search spaces and algorithms: domains, their introspection, the
searcher and scheduler classes (imported by path) and base classes, the concurrency limiter.

The HPO core (:mod:`itwinai_ray.tuning.search_space`, :mod:`~itwinai_ray.tuning.schedulers`,
:mod:`~itwinai_ray.tuning.algorithms`) parses and validates the YAML; every ``ray.tune``
object it needs is made or inspected here. Ray is imported on the first call, never at import.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from itwinai_ray.errors import ConfigurationError, MissingDependencyError


def domain(kind: str, *args: Any) -> Any:
    """A ``ray.tune`` domain: its functions have the same names as our types
    (``choice``, ``uniform``, ``qloguniform``, ``randn``, ...)."""
    from ray import tune

    return getattr(tune, kind)(*args)


def is_domain(value: Any) -> bool:
    """Whether ``value`` is a ``ray.tune`` domain (a sampled value)."""
    from ray.tune.search.sample import Domain

    return isinstance(value, Domain)


def categories(value: Any) -> list[Any] | None:
    """The categories of a ``choice`` domain; None for any other value."""
    from ray.tune.search.sample import Categorical

    return list(value.categories) if isinstance(value, Categorical) else None


def _fmt(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else repr(x)


def sampler_of(domain: Any) -> tuple[Any, float | None]:
    """A numeric domain's sampler under its quantization, and the quantum (None: none)."""
    from ray.tune.search import sample

    sampler = domain.get_sampler()
    if isinstance(sampler, sample.Quantized):
        return sampler.get_sampler(), sampler.q
    return sampler, None


def describe_domain(value: Any) -> str:
    """One line for a domain in our type names, e.g. ``loguniform(0.0001, 0.1)``."""
    from ray.tune.search import sample

    if isinstance(value, sample.Categorical):
        return f"choice({list(value.categories)!r})"
    if isinstance(value, sample.Function):
        return "sample_from(<function>)"
    sampler, q = sampler_of(value)
    is_int = isinstance(value, sample.Integer)
    if isinstance(sampler, sample.Normal):
        name, args = "randn", [sampler.mean, sampler.sd]
    elif isinstance(sampler, sample.LogUniform):
        name, args = ("lograndint" if is_int else "loguniform"), [value.lower, value.upper]
    else:
        name, args = ("randint" if is_int else "uniform"), [value.lower, value.upper]
    if q is not None:
        name, args = "q" + name, [*args, q]
    return f"{name}({', '.join(_fmt(a) for a in args)})"


def float_bounds(space: Mapping[str, Any]) -> dict[str, list[float]]:
    """``[lower, upper]`` of every float domain of a built space."""
    from ray.tune.search.sample import Float

    return {k: [float(d.lower), float(d.upper)] for k, d in space.items()
            if isinstance(d, Float)}


def int_bounds(space: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """``(lower, upper - 1)`` of every integer domain (Ray's upper bound is exclusive)."""
    from ray.tune.search.sample import Integer

    return {k: (d.lower, d.upper - 1) for k, d in space.items() if isinstance(d, Integer)}


def base_class(what: str) -> type:
    """Ray's base class of a ``searcher`` or a ``scheduler``."""
    if what == "searcher":
        from ray.tune.search import Searcher

        return Searcher
    from ray.tune.schedulers import TrialScheduler

    return TrialScheduler


def has_domains(space: Mapping[str, Any]) -> bool:
    """Whether a built space samples anything (Tune's own parsing of the spec)."""
    from ray.tune.search.variant_generator import parse_spec_vars

    _, domains, _ = parse_spec_vars(dict(space))
    return bool(domains)


def limit_concurrency(searcher: Any, max_concurrent: int) -> Any:
    """``searcher`` behind Tune's ``ConcurrencyLimiter``."""
    from ray.tune.search import ConcurrencyLimiter

    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def import_class(path: str, what: str) -> type:
    """The searcher or scheduler class at ``path`` (a Ray Tune class from the tables, or a
    user's ``_target_``): a missing package is a :class:`MissingDependencyError`."""
    module, _, attr = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as err:
        if err.name and not err.name.startswith(("ray", "itwinai_ray")) \
                and not module.startswith(err.name):
            raise MissingDependencyError(err.name, f"The {what} {path!r}") from err
        raise ConfigurationError(f"Cannot import the {what} {path!r}: {err}.") from err
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigurationError(f"Cannot import the {what} {path!r}: {err}.") from err
    if not isinstance(cls, type):
        raise ConfigurationError(f"The {what} {path!r} is not a class.")
    return cls
