"""Neutral searcher and scheduler choices -> Ray Tune objects.

The HPO core resolves a YAML spec to an
:class:`~itwinai_ray.tuning._algorithm_spec.AlgorithmChoice` (name, class path, the user's
arguments); this module builds the Ray object: the table's defaults, metric, mode and epochs
where the class takes them, the table's ``prepare`` and ``check`` hooks, the constructor, the
searcher's conversion of the search space and its ``ConcurrencyLimiter``. It runs twice per
experiment: once before Ray starts (:func:`check`, through the core's ``tuning/backend.py``),
so that bad arguments fail fast, and when the driver assembles the Tuner (:func:`assemble`),
whose objects Ray pickles into the experiment state for resume.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from itwinai_ray._suggest import did_you_mean
from itwinai_ray.backends.ray import translate
from itwinai_ray.errors import ConfigurationError, SearchSpaceError
from itwinai_ray.tuning._algorithm_spec import (
    AlgorithmChoice,
    AlgorithmSpec,
    BuildContext,
    entry_of_class,
)
from itwinai_ray.tuning.experiment_spec import ExperimentSpec
from itwinai_ray.tuning.schedulers import SCHEDULERS
from itwinai_ray.tuning.searchers import SEARCHERS


def _table(what: str) -> Mapping[str, AlgorithmSpec]:
    return SEARCHERS if what == "searcher" else SCHEDULERS


def _import(what: str, path: str) -> type:
    cls = translate.import_class(path, what)
    base = translate.base_class(what)
    if not issubclass(cls, base):
        raise ConfigurationError(f"{path!r} is not a Ray Tune {what} (a {base.__name__}).")
    return cls


def table_row(what: str, path: str) -> str | None:
    """The short name of the table row whose class is at ``path``; None: no row."""
    name, alg = entry_of_class(_import(what, path), _table(what))
    return name if alg is not None else None


def _named_parameters(params: Mapping[str, inspect.Parameter]) -> list[str]:
    return [p for p in params if p != "self" and params[p].kind not in
            (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def _arguments(choice: AlgorithmChoice, name: str, cls: type, alg: AlgorithmSpec | None,
               ) -> tuple[dict[str, Any], Mapping[str, inspect.Parameter]]:
    """The constructor arguments of ``cls``: the table's defaults, the given ones, and metric,
    mode, time attribute and epochs where it takes them; an argument it lacks is an error."""
    kwargs = {**(alg.defaults if alg else {}), **choice.kwargs}
    params = inspect.signature(cls.__init__).parameters
    accepted = _named_parameters(params)
    injected = {"metric": choice.metric, "mode": choice.mode, "time_attr": "training_iteration"}
    if alg and alg.epochs_arg and choice.max_t is not None:
        injected[alg.epochs_arg] = choice.max_t
    for key, value in injected.items():
        if key in accepted:
            kwargs.setdefault(key, value)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in kwargs:
        if key not in accepted and not var_kw:
            raise ConfigurationError(
                f"The {choice.what} {name!r} has no argument {key!r}."
                f"{did_you_mean(key, accepted, cutoff=0.5, prefix=True)} "
                f"Accepted: {', '.join(accepted)}.")
    return kwargs, params


def _construct(choice: AlgorithmChoice, space: Mapping[str, Any]) -> tuple[Any, str]:
    """The Ray object of a choice with a class path, and the name for messages."""
    cls = _import(choice.what, str(choice.path))
    alg = _table(choice.what).get(choice.name) if choice.name else None
    name = choice.name or cls.__name__
    kwargs, params = _arguments(choice, name, cls, alg)
    accepted = _named_parameters(params)
    try:  # a wrongly typed value (None, a string) fails in prepare/check/cls: name it
        if alg and alg.prepare:
            kwargs = alg.prepare(kwargs, BuildContext(
                name, choice.metric, choice.mode, space if choice.what == "scheduler" else {},
                choice.max_t, choice.max_concurrent, choice.num_samples))
        if alg and alg.check:
            defaults = {p: params[p].default for p in accepted
                        if params[p].default is not inspect.Parameter.empty}
            alg.check(name, {**defaults, **kwargs})
        kwargs = {k: translate.native(v) for k, v in kwargs.items()}
        return cls(**kwargs), name
    except (AssertionError, ValueError, TypeError, RuntimeError) as err:
        raise ConfigurationError(f"Cannot build the {choice.what} {name!r} with {kwargs}: "
                                 f"{err}") from err


def _check_space(searcher: Any, name: str, space: Mapping[str, Any]) -> None:
    """The searcher's own conversion of the space, run now rather than once Ray has started."""
    convert = getattr(type(searcher), "convert_search_space", None)
    if convert is None or not space or not translate.has_domains(space):
        return
    try:
        convert(dict(space))
    except (ValueError, TypeError, AssertionError, NotImplementedError) as err:
        raise SearchSpaceError(f"The searcher {name!r} cannot use this search space: {err}. "
                               f"Change the key's type, or choose another searcher "
                               f"(optuna and random take every type).") from err


def build(choice: Any, space: Mapping[str, Any]) -> Any:
    """The Ray searcher or scheduler of ``choice`` (None: Tune's random/grid generator or
    FIFO); anything that is not an :class:`AlgorithmChoice` (None, a Ray object) is returned
    as is. ``space``: the experiment's neutral param space."""
    if not isinstance(choice, AlgorithmChoice):
        return choice
    if choice.built is not None or choice.path is None:
        return choice.built
    obj, name = _construct(choice, space)
    if choice.what == "searcher":
        _check_space(obj, name, translate.param_space(space))
        if choice.max_concurrent is not None:
            obj = translate.limit_concurrency(obj, choice.max_concurrent)
    return obj


def check(choice: AlgorithmChoice, space: Mapping[str, Any]) -> None:
    """Build ``choice`` once and drop it: whatever Ray would refuse fails now."""
    build(choice, space)


def assemble(spec: ExperimentSpec) -> ExperimentSpec:
    """``spec`` with Ray's objects: the ``ray.tune`` param space, searcher and scheduler."""
    return dataclasses.replace(
        spec, param_space=translate.param_space(spec.param_space),
        search_alg=build(spec.search_alg, spec.param_space),
        scheduler=build(spec.scheduler, spec.param_space))
