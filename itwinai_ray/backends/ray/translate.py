"""Neutral search spaces (:mod:`itwinai_ray.tuning.domains`) <-> ``ray.tune`` domains, and
the Ray classes that searchers and schedulers are built from.

The HPO core parses and validates the YAML into neutral domains; the Ray backend turns them
into ``ray.tune`` domains here when it assembles the Tuner (:func:`param_space`), and a
``ray.tune`` domain built in Python into a neutral one (:func:`to_neutral`). Ray is imported
on the first call, never at import.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from itwinai_ray.errors import ConfigurationError, MissingDependencyError
from itwinai_ray.tuning import domains as nd


def to_ray(domain: nd.Domain) -> Any:
    """The ``ray.tune`` domain of a neutral one (what ``tune.<type>(...)`` returns).

    Raises ValueError (or AssertionError) where Ray refuses the values."""
    from ray.tune.search import sample

    if isinstance(domain, nd.Choice):
        return sample.Categorical(list(domain.categories)).uniform()
    if isinstance(domain, nd.SampleFrom):
        return sample.Function(domain.func)
    if isinstance(domain, nd.Float):
        ray = sample.Float(domain.lower, domain.upper)
    else:
        ray = sample.Integer(domain.lower, domain.upper)
    if domain.sampler == nd.NORMAL:
        ray = ray.normal(domain.mean, domain.sd)
    else:
        ray = ray.loguniform() if domain.sampler == nd.LOGUNIFORM else ray.uniform()
    return ray if domain.q is None else ray.quantized(domain.q)


def native(value: Any) -> Any:
    """``value`` with every neutral domain in it (one level of a mapping deep) turned into
    a ``ray.tune`` domain: a search space, or a scheduler argument such as PBT's
    ``hyperparam_mutations``."""
    if nd.is_domain(value):
        return to_ray(value)
    if isinstance(value, Mapping) and not nd.is_grid(value):
        return {k: to_ray(v) if nd.is_domain(v) else v for k, v in value.items()}
    return value


def param_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """A neutral search space as a ``Tuner(param_space=...)``: domains become ``ray.tune``
    domains; grid dicts, constants and Ray domains stay as they are."""
    return {k: to_ray(v) if nd.is_domain(v) else v for k, v in space.items()}


def sampler_of(domain: Any) -> tuple[Any, float | None]:
    """A numeric ``ray.tune`` domain's sampler under its quantization, and the quantum."""
    from ray.tune.search import sample

    sampler = domain.get_sampler()
    if isinstance(sampler, sample.Quantized):
        return sampler.get_sampler(), sampler.q
    return sampler, None


def to_neutral(value: Any) -> nd.Domain | None:
    """The neutral domain of a ``ray.tune`` domain (built in Python); None for any other
    value."""
    from ray.tune.search import sample

    if isinstance(value, sample.Categorical):
        return nd.Choice(tuple(value.categories))
    if isinstance(value, sample.Function):
        return nd.SampleFrom(value.func)
    if not isinstance(value, (sample.Float, sample.Integer)):
        return None
    sampler, q = sampler_of(value)
    if isinstance(sampler, sample.Normal):
        return nd.Float(value.lower, value.upper, nd.NORMAL, q, sampler.mean, sampler.sd)
    kind = nd.LOGUNIFORM if isinstance(sampler, sample.LogUniform) else nd.UNIFORM
    cls = nd.Integer if isinstance(value, sample.Integer) else nd.Float
    return cls(value.lower, value.upper, kind, q)


def base_class(what: str) -> type:
    """Ray's base class of a ``searcher`` or a ``scheduler``."""
    if what == "searcher":
        from ray.tune.search import Searcher

        return Searcher
    from ray.tune.schedulers import TrialScheduler

    return TrialScheduler


def has_domains(space: Mapping[str, Any]) -> bool:
    """Whether a ``ray.tune`` param space samples anything (Tune's own parsing of it)."""
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
