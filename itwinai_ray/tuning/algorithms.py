"""Ray Tune searchers and schedulers by short name: two data tables plus the builders.

A spec (YAML or Python) may be ``None``, a short name (``asha``), a dict with ``name`` plus
arguments (``{name: asha, grace_period: 2}``), a dict naming any class with ``_target_``
(other keys, or a nested ``kwargs``, are its arguments) or ``class_path`` (+ ``init_args``),
or an already built Ray object, which is returned as is.

The tables live in :mod:`.searchers` and :mod:`.schedulers`; adding an algorithm is one row.
Ray and the optional packages are imported inside the builders only.

:func:`build_algorithms` builds both and checks that they fit together: ``bohb`` gets its
``HyperBandForBOHB`` scheduler, PBT/PB2 refuse a searcher, and with several metrics
(``metric: [val_loss, model_size]``) a scheduler other than FIFO must name its one metric.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from typing import Any

from itwinai_ray._suggest import did_you_mean
from itwinai_ray.backends.ray import translate
from itwinai_ray.errors import ConfigurationError, MissingDependencyError, SearchSpaceError
from itwinai_ray.tuning._algorithm_spec import AlgorithmSpec, BuildContext
from itwinai_ray.tuning.objective import (
    TunedMetrics,
    as_list,
    check_metric_mode,
    normalize_objectives,
)
from itwinai_ray.tuning.schedulers import POPULATION_BASED, SCHEDULERS
from itwinai_ray.tuning.search_space import build_search_space, grid_keys, to_grid
from itwinai_ray.tuning.searchers import PIP_NAMES, SEARCHERS, SEED_ARGS


def _close(word: str, options: list[str]) -> str:
    return did_you_mean(word, options, cutoff=0.5, prefix=True)


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


def _check_available(name: str, alg: AlgorithmSpec, what: str) -> None:
    reason = alg.blocker() if alg.blocker else None
    if reason:
        raise ConfigurationError(f"The {what} {name!r} cannot be used here: {reason}.")
    for package in (alg.package, *alg.more_packages):
        if package and importlib.util.find_spec(package) is None:
            raise MissingDependencyError(PIP_NAMES.get(package, package),
                                         f"The {name!r} {what}", alg.extra)


def spec_name(spec: Any, what: str) -> str | None:
    """The short name a spec resolves to (``bohb`` for ``{name: bohb}`` or a built TuneBOHB)."""
    table = SEARCHERS if what == "searcher" else SCHEDULERS
    if spec is None:
        return next(iter(table))
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        if "name" in spec:
            return spec["name"]
        path = str(spec.get("_target_") or spec.get("class_path") or "")
        for name, alg in table.items():
            if path and alg.import_path and alg.import_path.split(".")[-1] == path.split(".")[-1]:
                return name
        return None
    inner = getattr(spec, "searcher", None)  # a ConcurrencyLimiter
    return _spec_of(type(inner if inner is not None else spec), table)[0]


def _named_parameters(params: Mapping[str, inspect.Parameter]) -> list[str]:
    return [p for p in params if p != "self" and params[p].kind not in
            (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def _arguments(what: str, name: str, cls: type, alg: AlgorithmSpec | None,
               kwargs: dict[str, Any], metric: Any, mode: Any, max_t: int | None,
               ) -> tuple[dict[str, Any], Mapping[str, inspect.Parameter]]:
    """The constructor arguments of ``cls``: the table's defaults, the given ones, and metric,
    mode, time attribute and epochs where it takes them; an argument it lacks is an error."""
    if "seed" in kwargs and name in SEED_ARGS:
        kwargs[SEED_ARGS[name]] = kwargs.pop("seed")
    kwargs = {**(alg.defaults if alg else {}), **kwargs}
    params = inspect.signature(cls.__init__).parameters
    accepted = _named_parameters(params)
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
    return kwargs, params


def _build(what: str, table: Mapping[str, AlgorithmSpec], spec: Any, metric: Any, mode: Any,
           max_t: int | None, space: Mapping[str, Any] | None = None,
           num_samples: int | None = None) -> tuple[Any, str, AlgorithmSpec | None, int | None]:
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
        _check_available(name, alg, what)
    if not isinstance(path, (str, type(None))):
        raise ConfigurationError(f"The {what} class path must be a string, got {path!r}.")
    user_limit = "max_concurrent" in kwargs
    max_concurrent = kwargs.pop("max_concurrent", alg.max_concurrent if alg else None)
    if path is None:
        if kwargs:
            raise ConfigurationError(f"The {name!r} {what} takes no options, "
                                     f"got {sorted(kwargs)}.")
        return None, str(name), alg, max_concurrent

    cls = translate.import_class(path, what)
    base = translate.base_class(what)
    if not issubclass(cls, base):
        raise ConfigurationError(f"{path!r} is not a Ray Tune {what} (a {base.__name__}).")
    if alg is None:
        name, alg = _spec_of(cls, table)
        if alg is not None and not user_limit:
            max_concurrent = alg.max_concurrent
    kwargs, params = _arguments(what, str(name), cls, alg, kwargs, metric, mode, max_t)
    accepted = _named_parameters(params)
    try:  # a wrongly typed value (None, a string) fails in prepare/check/cls: name it
        if alg and alg.prepare:
            kwargs = alg.prepare(kwargs, BuildContext(str(name), metric, mode, space or {},
                                                      max_t, max_concurrent, num_samples))
        if alg and alg.check:
            defaults = {p: params[p].default for p in accepted
                        if params[p].default is not inspect.Parameter.empty}
            alg.check(str(name), {**defaults, **kwargs})
        return cls(**kwargs), str(name), alg, max_concurrent
    except (AssertionError, ValueError, TypeError, RuntimeError) as err:
        raise ConfigurationError(f"Cannot build the {what} {name!r} with {kwargs}: {err}") from err


def _check_space(searcher: Any, name: str, space: Mapping[str, Any]) -> None:
    """The searcher's own conversion of the space, run now rather than once Ray has started."""
    convert = getattr(type(searcher), "convert_search_space", None)
    if convert is None or not space:
        return
    if not translate.has_domains(space):
        return
    try:
        convert(dict(space))
    except (ValueError, TypeError, AssertionError, NotImplementedError) as err:
        raise SearchSpaceError(f"The searcher {name!r} cannot use this search space: {err}. "
                               f"Change the key's type, or choose another searcher "
                               f"(optuna and random take every type).") from err


def build_searcher(spec: Any, metric: Any, mode: Any, space: Mapping[str, Any] | None, *,
                   num_samples: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Build the search algorithm and the param space that goes with it.

    Args:
        spec: None (random), a short name from :data:`SEARCHERS`, a dict spec or a built
            Ray searcher (returned as is).
        metric, mode: what to optimise; given to the searcher unless the spec sets them.
            Lists (several metrics) are accepted by the searchers that support them.
        space: YAML or already built search space (see ``build_search_space``).
        num_samples: the number of trials, when known: Nevergrad's default ``budget``.

    Returns:
        ``(search_alg or None, param_space)``. ``None`` means Ray's random/grid generator;
        for ``grid`` every ``choice`` has become ``grid_search``.

    Raises:
        ConfigurationError: unknown name or argument, bad ``mode``, several metrics for a
            single-objective searcher, or a searcher that cannot work here (hebo).
        MissingDependencyError: the searcher's package is not installed.
        SearchSpaceError: values the searcher cannot sample (grid_search; categories for
            bayesopt).
    """
    metric, mode = normalize_objectives(metric, mode)
    name = spec_name(spec, "searcher")
    alg = SEARCHERS.get(name) if isinstance(name, str) else None
    if isinstance(metric, list) and alg is not None and not alg.multi_objective:
        multi = [n for n, a in SEARCHERS.items() if a.multi_objective]
        raise ConfigurationError(
            f"The searcher {name!r} optimises one metric, but metric is {metric}. For several "
            f"metrics use {', '.join(multi)} (optuna: sampler nsga2 or tpe), or give one metric.")
    searcher, name, alg, max_concurrent = _build("searcher", SEARCHERS, spec, metric, mode, None,
                                                 num_samples=num_samples)
    param_space = build_search_space(space)
    if alg and alg.grid:
        param_space = to_grid(param_space)
    keys = grid_keys(param_space)
    if keys and alg and not alg.supports_grid:
        raise SearchSpaceError(f"{name} cannot sample grid_search values for {keys[0]!r}; "
                               f"use type: choice")
    if searcher is not None and isinstance(spec, (str, Mapping)):  # not a user-built object
        _check_space(searcher, name, param_space)
    if searcher is not None and max_concurrent is not None:
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ConfigurationError(f"max_concurrent is {max_concurrent!r}, but must be an "
                                     f"integer >= 1.")
        searcher = translate.limit_concurrency(searcher, max_concurrent)
    return searcher, param_space


def scheduler_objective(spec: Any, metric: Any, mode: Any) -> tuple[str, str]:
    """The one metric (and mode) that drives a scheduler, also when several are tuned."""
    if not isinstance(metric, (list, tuple)) or len(metric) == 1:
        return as_list(metric)[0], as_list(mode)[0]
    tuned = TunedMetrics.parse(metric, mode)
    name = spec_name(spec, "scheduler")
    own = _spec_value(spec, "metric")
    if own is None:
        if name == "fifo":
            return tuned.first  # FIFO stops nothing: the metric is not used
        raise ConfigurationError(
            f"The scheduler {name!r} stops trials on one metric, but tune_config.metric has "
            f"{len(metric)}: {list(metric)}. Name the one for early stopping, e.g. "
            f"scheduler: {{name: {name}, metric: {metric[0]}}}.")
    own_mode = _spec_value(spec, "mode")
    if own_mode is None:
        if own not in metric:
            raise ConfigurationError(
                f"The scheduler {name!r} stops on {own!r}, which is not one of the tuned "
                f"metrics {list(metric)}: give its mode too (mode: min or max).")
        own_mode = tuned.mode_of(own)
    return own, own_mode


def build_scheduler(spec: Any, metric: Any, mode: Any, max_t: int | None = None, *,
                    search_space: Mapping[str, Any] | None = None) -> Any:
    """Build the trial scheduler (None -> FIFO).

    Args:
        spec: None, a short name from :data:`SCHEDULERS`, a dict spec or a built scheduler.
        metric, mode: given to the scheduler unless the spec sets them;
            ``time_attr`` defaults to ``training_iteration`` (one per epoch). With several
            metrics, the spec must name its own (see :func:`scheduler_objective`).
        max_t: the trainer's number of epochs: the default ``max_t`` of ASHA and HyperBand,
            and what PBT's default ``perturbation_interval`` is derived from.
        search_space: the built param space: PBT's ``hyperparam_mutations`` and PB2's
            ``hyperparam_bounds`` default to it.

    Raises:
        ConfigurationError: unknown name or argument, or invalid values (named).
        MissingDependencyError: a needed package is not installed.
    """
    if isinstance(metric, (list, tuple)) and not isinstance(spec, (type(None), str, Mapping)):
        if getattr(spec, "metric", None) is None:  # TrialScheduler.metric
            raise ConfigurationError(
                f"The scheduler {type(spec).__name__} has no metric, and several are tuned "
                f"({list(metric)}): build it with metric=... and mode=....")
        return spec
    metric, mode = scheduler_objective(spec, metric, mode)
    scheduler, name, _, max_concurrent = _build("scheduler", SCHEDULERS, spec, metric, mode,
                                                max_t, search_space)
    if max_concurrent is not None:
        raise ConfigurationError(f"max_concurrent belongs to the searcher, not the scheduler "
                                 f"{name!r}.")
    return scheduler


def pair_scheduler(search_spec: Any, scheduler_spec: Any) -> Any:
    """The scheduler spec to use with ``search_spec``: ``bohb`` gets HyperBandForBOHB.

    Raises ConfigurationError for pairs Ray refuses or that cannot work: BOHB's searcher and
    scheduler without each other, PBT/PB2 with a searcher (they choose the values).
    """
    searcher = spec_name(search_spec, "searcher")
    scheduler = spec_name(scheduler_spec, "scheduler")
    if searcher == "bohb":
        if scheduler_spec is None:
            return "bohb"
        if scheduler == "hyperband" and isinstance(scheduler_spec, str):
            return "bohb"
        if scheduler == "hyperband" and isinstance(scheduler_spec, Mapping) \
                and "name" in scheduler_spec:  # BOHB's own HyperBand, with the user's arguments
            return {**scheduler_spec, "name": "bohb"}
        if scheduler != "bohb":
            raise ConfigurationError(
                f"The bohb searcher needs its HyperBandForBOHB scheduler, got {scheduler!r}. "
                f"Leave scheduler unset, or set scheduler: {{name: bohb, ...}}.")
    elif scheduler == "bohb":
        raise ConfigurationError(f"The bohb scheduler (HyperBandForBOHB) works only with "
                                 f"search_alg: bohb, got {searcher!r}.")
    if scheduler in POPULATION_BASED and searcher not in ("random", "grid"):
        raise ConfigurationError(
            f"The {scheduler} scheduler chooses the hyperparameters itself and cannot be used "
            f"with the {searcher!r} searcher: use search_alg: random (or grid).")
    return scheduler_spec


def build_algorithms(search_spec: Any, scheduler_spec: Any, metric: Any, mode: Any,
                     space: Mapping[str, Any] | None, max_t: int | None = None, *,
                     num_samples: int | None = None) -> tuple[Any, dict[str, Any], Any]:
    """Searcher, param space and scheduler, checked together (see :func:`pair_scheduler`).

    Returns ``(search_alg or None, param_space, scheduler)``.
    """
    metric, mode = normalize_objectives(metric, mode)
    scheduler_spec = pair_scheduler(search_spec, scheduler_spec)
    searcher, param_space = build_searcher(search_spec, metric, mode, space,
                                           num_samples=num_samples)
    scheduler = build_scheduler(scheduler_spec, metric, mode, max_t, search_space=param_space)
    return searcher, param_space, scheduler


def _spec_value(spec: Any, key: str) -> Any:
    if isinstance(spec, Mapping):
        return spec.get(key, (spec.get("init_args") or {}).get(key))
    if spec is None or isinstance(spec, str):
        return None
    return getattr(spec, key, None) or getattr(spec, f"_{key}", None)


def resolve_metric(tune_metric: Any, scheduler: Any = None) -> Any:
    """itwinai's rule: tune_config's metric (one or a list), else the scheduler's ``metric``,
    else ``"loss"``."""
    return tune_metric or _spec_value(scheduler, "metric") or "loss"


def resolve_mode(tune_mode: Any, scheduler: Any = None) -> Any:
    """itwinai's rule: tune_config's mode, else the scheduler's ``mode``, else ``"min"``."""
    return tune_mode or _spec_value(scheduler, "mode") or "min"


__all__ = ["SCHEDULERS", "SEARCHERS", "AlgorithmSpec", "build_algorithms", "build_scheduler",
           "build_searcher", "check_metric_mode", "normalize_objectives", "pair_scheduler",
           "resolve_metric", "resolve_mode", "scheduler_objective", "spec_name"]
