"""Ray Tune searchers and schedulers by short name: two data tables plus two builders.

A spec (YAML or Python) may be ``None``, a short name (``asha``), a dict with ``name`` plus
arguments (``{name: asha, grace_period: 2}``), a dict naming any class with ``_target_``
(other keys, or a nested ``kwargs``, are its arguments) or ``class_path`` (+ ``init_args``),
or an already built Ray object, which is returned as is.

Adding an algorithm is one line in :data:`SEARCHERS` or :data:`SCHEDULERS`. Ray and the
optional packages are imported inside the builders only.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from itwinai_ray._suggest import did_you_mean
from itwinai_ray.errors import ConfigurationError, MissingDependencyError, SearchSpaceError
from itwinai_ray.tuning.search_space import build_search_space, grid_keys, to_grid


@dataclass(frozen=True)
class AlgorithmSpec:
    """How to build one searcher or scheduler.

    Attributes:
        import_path: dotted path of the Ray class; ``None`` means Ray's built-in random/grid
            generator (no ``search_alg``).
        defaults: keyword arguments used unless the user gives them.
        package: pip package that must be installed, if any.
        extra: itwinai-ray extra that installs ``package``.
        supports_grid: whether ``grid_search`` values can be given to this searcher.
        description: one line for ``--help`` and docs.
        max_concurrent: wrap the searcher in ``ConcurrencyLimiter(max_concurrent)``.
        epochs_arg: argument that defaults to the trainer's number of epochs (ASHA: ``max_t``).
        grid: convert ``choice`` to ``grid_search`` (the ``grid`` searcher).
        check: validates the effective arguments; raises ConfigurationError.
    """

    import_path: str | None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    package: str | None = None
    extra: str | None = None
    supports_grid: bool = True
    description: str = ""
    max_concurrent: int | None = None
    epochs_arg: str | None = None
    grid: bool = False
    check: Callable[[str, Mapping[str, Any]], None] | None = None


def _require(name: str, ok: bool, what: str) -> None:
    if not ok:
        raise ConfigurationError(f"Scheduler {name!r}: {what}.")


def _check_hyperband(name: str, a: Mapping[str, Any]) -> None:
    """Successive-halving arguments, checked before Ray's bare asserts."""
    max_t, grace, brackets = a["max_t"], a["grace_period"], a["brackets"]
    rf = a["reduction_factor"]
    _require(name, max_t > 0, f"max_t is {max_t}, but must be > 0")
    _require(name, grace >= 1, f"grace_period is {grace}, but must be >= 1")
    _require(name, grace <= max_t, f"grace_period is {grace}, but must be <= max_t ({max_t}). "
             f"Lower grace_period or train for more epochs")
    _require(name, rf >= 2, f"reduction_factor is {rf}, but must be >= 2")
    _require(name, brackets >= 1, f"brackets is {brackets}, but must be >= 1")


def _check_median(name: str, a: Mapping[str, Any]) -> None:
    grace, samples = a["grace_period"], a["min_samples_required"]
    _require(name, grace >= 0, f"grace_period is {grace}, but must be >= 0")
    _require(name, samples >= 1, f"min_samples_required is {samples}, but must be >= 1")


SEARCHERS: dict[str, AlgorithmSpec] = {
    "random": AlgorithmSpec(None, description="Random sampling (Ray's BasicVariantGenerator)."),
    "grid": AlgorithmSpec(None, grid=True, description="Every combination of choice values."),
    "optuna": AlgorithmSpec("ray.tune.search.optuna.OptunaSearch", package="optuna", extra="hpo",
                            supports_grid=False, description="Optuna TPE (Bayesian) sampler."),
}

SCHEDULERS: dict[str, AlgorithmSpec] = {
    "fifo": AlgorithmSpec("ray.tune.schedulers.FIFOScheduler",
                          description="Run every trial to the end."),
    "asha": AlgorithmSpec("ray.tune.schedulers.ASHAScheduler", epochs_arg="max_t",
                          defaults={"grace_period": 1}, check=_check_hyperband,
                          description="Asynchronous successive halving: stop poor trials early."),
    "median": AlgorithmSpec("ray.tune.schedulers.MedianStoppingRule", check=_check_median,
                            defaults={"grace_period": 1, "min_samples_required": 3},
                            description="Stop trials worse than the median of the others."),
}


def _close(word: str, options: list[str]) -> str:
    return did_you_mean(word, options, cutoff=0.5, prefix=True)


def check_metric_mode(metric: Any, mode: Any) -> None:
    """``mode`` must be ``min`` or ``max`` (lists of both for multi-objective searchers)."""
    metrics = metric if isinstance(metric, (list, tuple)) else [metric]
    modes = mode if isinstance(mode, (list, tuple)) else [mode]
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ConfigurationError(f"metric is {metric!r}, but must be a non-empty metric name.")
    for m in modes:
        if m not in ("min", "max"):
            raise ConfigurationError(f"mode is {m!r}, but must be 'min' or 'max'.")
    if len(metrics) != len(modes):
        raise ConfigurationError(f"metric {metric!r} and mode {mode!r} differ in length.")


def _import(path: str, what: str) -> type:
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


def _spec_of(cls: type, table: Mapping[str, AlgorithmSpec]) -> tuple[str, AlgorithmSpec | None]:
    """The table entry whose class is ``cls`` (only among modules already imported)."""
    for name, alg in table.items():
        if alg.import_path:
            module, _, attr = alg.import_path.rpartition(".")
            if getattr(sys.modules.get(module), attr, None) is cls:
                return name, alg
    return cls.__name__, None


def _parse(spec: Mapping[str, Any], what: str) -> tuple[str | None, str | None, dict[str, Any]]:
    """A dict spec -> (short name, import path, user kwargs)."""
    rest = dict(spec)
    if "_target_" in rest:
        path = rest.pop("_target_")
        kwargs = {**rest.pop("kwargs", {}), **rest}
        return None, path, kwargs
    if "class_path" in rest:
        path = rest.pop("class_path")
        kwargs = dict(rest.pop("init_args", None) or {})
        if rest:
            raise ConfigurationError(f"The {what} spec with class_path {path!r} has extra keys "
                                     f"{sorted(rest)}; put arguments under init_args.")
        return None, path, kwargs
    if "name" in rest:
        return rest.pop("name"), None, rest
    raise ConfigurationError(f"A {what} spec needs 'name' (a short name), '_target_' or "
                             f"'class_path'; got keys {sorted(spec)}.")


def _build(what: str, table: Mapping[str, AlgorithmSpec], spec: Any, metric: Any, mode: Any,
           max_t: int | None) -> tuple[Any, str, AlgorithmSpec | None, int | None]:
    """Build a searcher/scheduler. Returns (object or None, name, table entry, max_concurrent)."""
    check_metric_mode(metric, mode)
    if spec is not None and not isinstance(spec, (str, Mapping)):
        return spec, *_spec_of(type(spec), table), None  # a built Ray object: left alone
    if spec is None or isinstance(spec, str):
        name, path, kwargs = spec or next(iter(table)), None, {}
    else:
        name, path, kwargs = _parse(spec, what)
    alg: AlgorithmSpec | None = None
    if path is None:
        if not isinstance(name, str) or name not in table:
            raise ConfigurationError(
                f"Unknown {what} {name!r}.{_close(str(name), list(table))} Available: "
                f"{', '.join(table)}; or name any class with _target_ / class_path.")
        alg, path = table[name], table[name].import_path
        if alg.package and importlib.util.find_spec(alg.package) is None:
            raise MissingDependencyError(alg.package, f"The {name!r} {what}", alg.extra)
    if not isinstance(path, (str, type(None))):
        raise ConfigurationError(f"The {what} class path must be a string, got {path!r}.")
    max_concurrent = kwargs.pop("max_concurrent", alg.max_concurrent if alg else None)
    if path is None:
        if kwargs:
            raise ConfigurationError(f"The {name!r} {what} takes no options, "
                                     f"got {sorted(kwargs)}.")
        return None, str(name), alg, max_concurrent

    cls = _import(path, what)
    base = _base_class(what)
    if not issubclass(cls, base):
        raise ConfigurationError(f"{path!r} is not a Ray Tune {what} (a {base.__name__}).")
    if alg is None:
        name, alg = _spec_of(cls, table)
    kwargs = {**(alg.defaults if alg else {}), **kwargs}
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p != "self" and params[p].kind not in
                (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    injected = {"metric": metric, "mode": mode, "time_attr": "training_iteration"}
    if alg and alg.epochs_arg and max_t is not None:
        injected[alg.epochs_arg] = max_t
    for key, value in injected.items():
        if key in accepted:
            kwargs.setdefault(key, value)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in kwargs:
        if key not in accepted and not var_kw:
            raise ConfigurationError(
                f"The {what} {name!r} has no argument {key!r}.{_close(key, accepted)} "
                f"Accepted: {', '.join(accepted)}.")
    if alg and alg.check:
        defaults = {p: params[p].default for p in accepted
                    if params[p].default is not inspect.Parameter.empty}
        alg.check(str(name), {**defaults, **kwargs})
    try:
        return cls(**kwargs), str(name), alg, max_concurrent
    except (AssertionError, ValueError, TypeError) as err:
        raise ConfigurationError(f"Cannot build the {what} {name!r} with {kwargs}: {err}") from err


def _base_class(what: str) -> type:
    if what == "searcher":
        from ray.tune.search import Searcher

        return Searcher
    from ray.tune.schedulers import TrialScheduler

    return TrialScheduler


def build_searcher(spec: Any, metric: Any, mode: Any,
                   space: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """Build the search algorithm and the param space that goes with it.

    Args:
        spec: None (random), a short name from :data:`SEARCHERS`, a dict spec or a built
            Ray searcher (returned as is).
        metric, mode: what to optimise; given to the searcher unless the spec sets them.
        space: YAML or already built search space (see ``build_search_space``).

    Returns:
        ``(search_alg or None, param_space)``. ``None`` means Ray's random/grid generator;
        for ``grid`` every ``choice`` has become ``grid_search``.

    Raises:
        ConfigurationError: unknown name or argument, bad ``mode``.
        MissingDependencyError: the searcher's package is not installed.
        SearchSpaceError: ``grid_search`` values for a searcher that cannot sample them.
    """
    searcher, name, alg, max_concurrent = _build("searcher", SEARCHERS, spec, metric, mode, None)
    param_space = build_search_space(space)
    if alg and alg.grid:
        param_space = to_grid(param_space)
    keys = grid_keys(param_space)
    if keys and alg and not alg.supports_grid:
        raise SearchSpaceError(f"{name} cannot sample grid_search values for {keys[0]!r}; "
                               f"use type: choice")
    if searcher is not None and max_concurrent is not None:
        from ray.tune.search import ConcurrencyLimiter

        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ConfigurationError(f"max_concurrent is {max_concurrent!r}, but must be an "
                                     f"integer >= 1.")
        searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    return searcher, param_space


def build_scheduler(spec: Any, metric: str, mode: str, max_t: int | None = None) -> Any:
    """Build the trial scheduler (None -> FIFO).

    Args:
        spec: None, a short name from :data:`SCHEDULERS`, a dict spec or a built scheduler.
        metric, mode: given to the scheduler unless the spec sets them;
            ``time_attr`` defaults to ``training_iteration`` (one per epoch).
        max_t: the trainer's number of epochs: the default ``max_t`` of ASHA.

    Raises:
        ConfigurationError: unknown name or argument, or invalid values (named).
        MissingDependencyError: a needed package is not installed.
    """
    scheduler, name, _, max_concurrent = _build("scheduler", SCHEDULERS, spec, metric, mode,
                                                max_t)
    if max_concurrent is not None:
        raise ConfigurationError(f"max_concurrent belongs to the searcher, not the scheduler "
                                 f"{name!r}.")
    return scheduler


def _spec_value(spec: Any, key: str) -> Any:
    if isinstance(spec, Mapping):
        return spec.get(key, (spec.get("init_args") or {}).get(key))
    if spec is None or isinstance(spec, str):
        return None
    return getattr(spec, key, None) or getattr(spec, f"_{key}", None)


def resolve_metric(tune_metric: str | None, scheduler: Any = None) -> str:
    """itwinai's rule: tune_config's metric, else the scheduler's ``metric``, else ``"loss"``."""
    return tune_metric or _spec_value(scheduler, "metric") or "loss"


def resolve_mode(tune_mode: str | None, scheduler: Any = None) -> str:
    """itwinai's rule: tune_config's mode, else the scheduler's ``mode``, else ``"min"``."""
    return tune_mode or _spec_value(scheduler, "mode") or "min"


__all__ = ["SCHEDULERS", "SEARCHERS", "AlgorithmSpec", "build_scheduler", "build_searcher",
           "check_metric_mode", "resolve_metric", "resolve_mode"]
