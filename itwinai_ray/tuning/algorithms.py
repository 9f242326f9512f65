"""Searchers and schedulers by short name: two data tables plus the resolvers.

A spec (YAML or Python) may be ``None``, a short name (``asha``), a dict with ``name`` plus
arguments (``{name: asha, grace_period: 2}``), a dict naming any class with ``_target_``
(other keys, or a nested ``kwargs``, are its arguments) or ``class_path`` (+ ``init_args``),
or an object the user built (e.g. a Ray searcher), which is used as is.

The tables live in :mod:`.searchers` and :mod:`.schedulers`; adding an algorithm is one row.
A spec resolves to a neutral :class:`~._algorithm_spec.AlgorithmChoice` (name, class path,
checked arguments); the backend builds the object when it assembles the experiment, and once
before, through :func:`.backend.check_algorithm`, so that what only the class can check
(its constructor's arguments, the table's ``check``, the searcher's view of the space) fails
before the backend starts.

:func:`resolve_algorithms` resolves both and checks that they fit together: ``bohb`` gets its
``HyperBandForBOHB`` scheduler, PBT/PB2 refuse a searcher, and with several metrics
(``metric: [val_loss, model_size]``) a scheduler other than FIFO must name its one metric.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from itwinai_ray._suggest import did_you_mean
from itwinai_ray.errors import ConfigurationError, MissingDependencyError, SearchSpaceError

from . import backend
from ._algorithm_spec import AlgorithmChoice, AlgorithmSpec, entry_of_class
from .objective import TunedMetrics, as_list, check_metric_mode, normalize_objectives
from .schedulers import POPULATION_BASED, SCHEDULERS
from .search_space import build_search_space, grid_keys, to_grid
from .searchers import PIP_NAMES, SEARCHERS, SEED_ARGS


def _close(word: str, options: list[str]) -> str:
    return did_you_mean(word, options, cutoff=0.5, prefix=True)


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
    if isinstance(spec, AlgorithmChoice):
        return spec.label
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
    return entry_of_class(type(inner if inner is not None else spec), table)[0]


def _resolve(what: str, table: Mapping[str, AlgorithmSpec], spec: Any, metric: Any, mode: Any,
             max_t: int | None, num_samples: int | None = None) -> AlgorithmChoice:
    """A searcher/scheduler spec -> its neutral choice: the name, class and options checked."""
    check_metric_mode(metric, mode)
    context = {"metric": metric, "mode": mode, "max_t": max_t, "num_samples": num_samples}
    if spec is not None and not isinstance(spec, (str, Mapping)):
        name = entry_of_class(type(spec), table)[0]  # a built object: left alone
        return AlgorithmChoice(what, name, None, built=spec, **context)
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
    if path is None and kwargs:
        raise ConfigurationError(f"The {name!r} {what} takes no options, got {sorted(kwargs)}.")
    if alg is None and path is not None:  # a class path: which row is it, if any?
        name = backend.table_row(what, path)
        alg = table.get(name) if name else None
        if alg is not None and not user_limit:
            max_concurrent = alg.max_concurrent
    if "seed" in kwargs and name in SEED_ARGS:
        kwargs[SEED_ARGS[name]] = kwargs.pop("seed")
    return AlgorithmChoice(what, name, path, kwargs, max_concurrent=max_concurrent,
                           user_limit=user_limit, **context)


def resolve_searcher(spec: Any, metric: Any, mode: Any, space: Mapping[str, Any] | None, *,
                     num_samples: int | None = None, check: bool = True
                     ) -> tuple[AlgorithmChoice, dict[str, Any]]:
    """Resolve the search algorithm and build the (neutral) param space that goes with it.

    Args:
        spec: None (random), a short name from :data:`SEARCHERS`, a dict spec or a built
            searcher (used as is).
        metric, mode: what to optimise; given to the searcher unless the spec sets them.
            Lists (several metrics) are accepted by the searchers that support them.
        space: YAML or already built search space (see ``build_search_space``).
        num_samples: the number of trials, when known: Nevergrad's default ``budget``.
        check: have the backend build the searcher once, now (False: the caller builds it
            right away, which raises the same errors).

    Returns:
        ``(searcher choice, param_space)``. A choice without ``path`` means the backend's
        random/grid generator; for ``grid`` every ``choice`` has become ``grid_search``.

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
    choice = _resolve("searcher", SEARCHERS, spec, metric, mode, None, num_samples=num_samples)
    param_space = build_search_space(space)
    alg = SEARCHERS.get(choice.name) if choice.name else None
    if alg and alg.grid:
        param_space = to_grid(param_space)
    keys = grid_keys(param_space)
    if keys and alg and not alg.supports_grid:
        raise SearchSpaceError(f"{choice.name} cannot sample grid_search values for "
                               f"{keys[0]!r}; use type: choice")
    limit = choice.max_concurrent
    if choice.path is not None and limit is not None and (
            not isinstance(limit, int) or limit < 1):
        raise ConfigurationError(f"max_concurrent is {limit!r}, but must be an integer >= 1.")
    if check:
        backend.check_algorithm(choice, param_space)
    return choice, param_space


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


def resolve_scheduler(spec: Any, metric: Any, mode: Any, max_t: int | None = None, *,
                      search_space: Mapping[str, Any] | None = None,
                      check: bool = True) -> AlgorithmChoice:
    """Resolve the trial scheduler (None -> FIFO) and have the backend check it.

    Args:
        spec: None, a short name from :data:`SCHEDULERS`, a dict spec or a built scheduler.
        metric, mode: given to the scheduler unless the spec sets them;
            ``time_attr`` defaults to ``training_iteration`` (one per epoch). With several
            metrics, the spec must name its own (see :func:`scheduler_objective`).
        max_t: the trainer's number of epochs: the default ``max_t`` of ASHA and HyperBand,
            and what PBT's default ``perturbation_interval`` is derived from.
        search_space: the built (neutral) param space: PBT's ``hyperparam_mutations`` and
            PB2's ``hyperparam_bounds`` default to it.
        check: as for :func:`resolve_searcher`.

    Raises:
        ConfigurationError: unknown name or argument, or invalid values (named).
        MissingDependencyError: a needed package is not installed.
    """
    if isinstance(metric, (list, tuple)) and not isinstance(spec, (type(None), str, Mapping)):
        if getattr(spec, "metric", None) is None:  # TrialScheduler.metric
            raise ConfigurationError(
                f"The scheduler {type(spec).__name__} has no metric, and several are tuned "
                f"({list(metric)}): build it with metric=... and mode=....")
        return AlgorithmChoice("scheduler", spec_name(spec, "scheduler"), None, built=spec)
    metric, mode = scheduler_objective(spec, metric, mode)
    choice = _resolve("scheduler", SCHEDULERS, spec, metric, mode, max_t)
    if choice.max_concurrent is not None:
        raise ConfigurationError(f"max_concurrent belongs to the searcher, not the scheduler "
                                 f"{choice.label!r}.")
    if check:
        backend.check_algorithm(choice, search_space or {})
    return choice


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


def resolve_algorithms(search_spec: Any, scheduler_spec: Any, metric: Any, mode: Any,
                       space: Mapping[str, Any] | None, max_t: int | None = None, *,
                       num_samples: int | None = None, check: bool = True
                       ) -> tuple[AlgorithmChoice, dict[str, Any], AlgorithmChoice]:
    """Searcher, param space and scheduler, checked together (see :func:`pair_scheduler`).

    Returns ``(searcher choice, neutral param_space, scheduler choice)``.
    """
    metric, mode = normalize_objectives(metric, mode)
    scheduler_spec = pair_scheduler(search_spec, scheduler_spec)
    searcher, param_space = resolve_searcher(search_spec, metric, mode, space,
                                             num_samples=num_samples, check=check)
    scheduler = resolve_scheduler(scheduler_spec, metric, mode, max_t,
                                  search_space=param_space, check=check)
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


__all__ = ["SCHEDULERS", "SEARCHERS", "AlgorithmChoice", "AlgorithmSpec", "check_metric_mode",
           "normalize_objectives", "pair_scheduler", "resolve_algorithms", "resolve_metric",
           "resolve_mode", "resolve_scheduler", "resolve_searcher", "scheduler_objective",
           "spec_name"]
