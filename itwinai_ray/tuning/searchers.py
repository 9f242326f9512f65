"""The searcher table: short names, their Ray classes and how YAML values become arguments.

``search_alg: {name: optuna, sampler: cmaes}``, ``{name: nevergrad, optimizer: TwoPointsDE}``,
``{name: bayesopt, seed: 1}``: every optional package is imported only when its searcher is
built. ``seed`` is accepted by every searcher that can be seeded and renamed to the Ray
class's own argument (``random_state``, ``random_state_seed``).

Why some searchers need more than ``pip install``:

- ``bayesopt``: Ray 2.60's ``BayesOptSearch`` calls ``bayes_opt.UtilityFunction``, which
  ``bayesian-optimization`` 2.0 removed; the ``hpo`` extra pins 1.4.x (nevergrad 1.0.12 pins
  exactly 1.4.0 itself).
- ``hebo``: HEBO 0.3.6 requires ``numpy<1.25``; Ray, torch and scikit-learn here need numpy 2,
  so installing HEBO would downgrade numpy under them. Building ``hebo`` raises an error that
  says so.
- ``ax``: Ray 2.60's ``AxSearch`` targets ax-platform 0.x; with 1.3.1 (the release that installs
  here, with botorch, gpytorch, plotly and IPython) it fails when Tune hands it the search
  space. Building ``ax`` raises an error that says so.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from itwinai_ray._suggest import did_you_mean
from itwinai_ray.errors import ConfigurationError, MissingDependencyError
from itwinai_ray.tuning._algorithm_spec import AlgorithmSpec, BuildContext
from itwinai_ray.tuning.objective import TunedMetrics

#: Optuna samplers by short name: (class name in ``optuna.samplers``, multi-objective,
#: package needed besides optuna).
OPTUNA_SAMPLERS: dict[str, tuple[str, bool, str | None]] = {
    "tpe": ("TPESampler", True, None),
    "cmaes": ("CmaEsSampler", False, "cmaes"),
    "nsga2": ("NSGAIISampler", True, None),
    "nsga3": ("NSGAIIISampler", True, None),
    "gp": ("GPSampler", True, "torch"),
    "random": ("RandomSampler", True, None),
    "qmc": ("QMCSampler", True, "scipy"),
}

#: Nevergrad's optimizer when none is named: differential evolution (needs no budget).
NEVERGRAD_DEFAULT = "TwoPointsDE"


def _is_multi(metric: Any) -> bool:
    return TunedMetrics.parse(metric, None).several


def _checked_kwargs(owner: str, cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls).parameters
    accepted = [p for p in params if params[p].kind not in
                (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in accepted:
                raise ConfigurationError(
                    f"{owner} has no argument {key!r}.{did_you_mean(key, accepted)} "
                    f"Accepted: {', '.join(accepted)}.")
    return dict(kwargs)


def optuna_sampler(spec: Any, seed: int | None, metric: Any) -> Any:
    """An Optuna sampler from ``tpe`` / ``{name: cmaes, sigma0: 0.5}`` / a sampler object."""
    if spec is None or not isinstance(spec, (str, Mapping)):
        return spec
    kwargs = {} if isinstance(spec, str) else dict(spec)
    name = spec if isinstance(spec, str) else kwargs.pop("name", None)
    if name not in OPTUNA_SAMPLERS:
        raise ConfigurationError(
            f"Unknown Optuna sampler {name!r}.{did_you_mean(name, OPTUNA_SAMPLERS, 0.5, True)} "
            f"Available: {', '.join(OPTUNA_SAMPLERS)} (e.g. sampler: {{name: cmaes}}).")
    cls_name, multi, package = OPTUNA_SAMPLERS[name]
    if _is_multi(metric) and not multi:
        raise ConfigurationError(
            f"The Optuna sampler {name!r} optimises one metric, but metric is {metric!r}. "
            f"For several metrics use sampler: nsga2 or tpe.")
    if package and importlib.util.find_spec(package) is None:
        raise MissingDependencyError(package, f"The Optuna sampler {name!r}", "hpo")
    import optuna.samplers

    cls = getattr(optuna.samplers, cls_name, None)
    if cls is None:
        raise ConfigurationError(
            f"The Optuna sampler {name!r} ({cls_name}) is not in the installed optuna "
            f"{optuna.__version__}; upgrade optuna or choose another sampler.")
    if seed is not None and "seed" in inspect.signature(cls).parameters:
        kwargs.setdefault("seed", seed)
    kwargs = _checked_kwargs(f"The Optuna sampler {name!r}", cls, kwargs)
    try:
        sampler = cls(**kwargs)
        default_getstate = getattr(object, "__getstate__", None)  # Python >= 3.11
        if hasattr(sampler, "_thread_lock") and getattr(cls, "__getstate__",
                                                        None) is default_getstate:
            sampler = __getattr__(f"{_LOCK_FREE}{cls_name}")(**kwargs)
        return sampler
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"Cannot build the Optuna sampler {name!r} with {kwargs}: "
                                 f"{err}") from err


#: Prefix of the picklable subclasses of Optuna samplers that hold a threading.Lock.
_LOCK_FREE = "LockFree"


class _PicklesWithoutLock:
    """Optuna 5.1's GA samplers (nsga2, nsga3) keep a ``threading.Lock`` that cannot be
    pickled, and Ray Tune pickles the searcher (with the Tuner, and its state for resume):
    pickle without the lock and make a new one on load."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import threading

        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``LockFree<Sampler>``: built on first use, here, so that pickle finds it by name."""
    if not name.startswith(_LOCK_FREE):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import optuna.samplers

    base = getattr(optuna.samplers, name[len(_LOCK_FREE):])
    cls = type(name, (_PicklesWithoutLock, base), {"__module__": __name__})
    globals()[name] = cls
    return cls


def _prepare_optuna(kwargs: dict[str, Any], ctx: BuildContext) -> dict[str, Any]:
    sampler = kwargs.get("sampler")  # None: Ray's default TPE (also for several metrics)
    if isinstance(sampler, (str, Mapping)):
        kwargs["sampler"] = optuna_sampler(sampler, kwargs.pop("seed", None), ctx.metric)
    return kwargs


def _prepare_nevergrad(kwargs: dict[str, Any], ctx: BuildContext) -> dict[str, Any]:
    """``optimizer: CMA`` -> ``nevergrad.optimizers.registry['CMA']``, with ``num_workers``
    (the ConcurrencyLimiter's) and ``budget`` (``num_samples``) filled in."""
    import nevergrad as ng

    name = kwargs.get("optimizer", NEVERGRAD_DEFAULT)
    kwargs["optimizer"] = name
    if isinstance(name, str):
        registry = ng.optimizers.registry
        if name not in registry:
            raise ConfigurationError(
                f"Unknown Nevergrad optimizer {name!r}.{did_you_mean(name, sorted(registry))} "
                f"Evolutionary examples: TwoPointsDE, CMA, OnePlusOne, PSO, "
                f"DiscreteOnePlusOne; adaptive: NGOpt. All: nevergrad.optimizers.registry.")
        kwargs["optimizer"] = registry[name]
    if isinstance(kwargs["optimizer"], ng.optimizers.base.Optimizer):
        return kwargs  # a built optimizer: used as is
    # Nevergrad asserts when asked for more points at once than its num_workers.
    options = dict(kwargs.get("optimizer_kwargs") or {})
    options.setdefault("num_workers", ctx.max_concurrent or 1)
    if ctx.num_samples:
        options.setdefault("budget", ctx.num_samples)
    kwargs["optimizer_kwargs"] = options
    try:  # some optimizers (NGOpt) fail only at the first ask: try one now, on a toy space
        kwargs["optimizer"](ng.p.Dict(x=ng.p.Scalar(lower=0.0, upper=1.0)), **options).ask()
    except (AssertionError, TypeError, ValueError) as err:
        raise ConfigurationError(
            f"The Nevergrad optimizer {name!r} cannot start with {options}: "
            f"{type(err).__name__} {err}. NGOpt needs a budget (optimizer_kwargs: "
            f"{{budget: N}}, or num_samples); or pick another optimizer.") from err
    return kwargs


def numpy_blocker(package: str, below: str) -> Any:
    """A ``blocker`` for packages that need ``numpy<below``."""

    def blocker() -> str | None:
        import numpy as np

        def parts(v: str) -> tuple[int, ...]:
            return tuple(int(p) for p in v.split(".")[:2] if p.isdigit())

        if parts(np.__version__) >= parts(below):
            return (f"{package} needs numpy<{below}, but numpy {np.__version__} is installed "
                    f"(Ray 2.60, torch and scikit-learn here need numpy 2). Installing it "
                    f"would downgrade numpy under them. Use optuna (sampler: gp or tpe) or "
                    f"bayesopt instead")
        return None

    return blocker


def ax_blocker() -> str | None:
    """Ray 2.60's AxSearch was written for ax-platform 0.x; the current 1.x breaks it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("ax-platform")
    except PackageNotFoundError:
        installed = None
    if installed is not None and installed.startswith("0."):
        return None  # ax-platform 0.x: let Ray's AxSearch try
    return (f"Ray 2.60's AxSearch does not work with ax-platform 1.x "
            f"({'installed: ' + installed if installed else 'the current release'}): "
            f"measured with 1.3.1, set_search_properties fails with \"'Objective' object has no "
            f"attribute 'objectives'\". Use optuna (sampler: gp) or bayesopt for Bayesian "
            f"optimisation")


SEARCHERS: dict[str, AlgorithmSpec] = {
    "random": AlgorithmSpec(None, multi_objective=True,
                            description="Random sampling (Ray's BasicVariantGenerator)."),
    "grid": AlgorithmSpec(None, grid=True, multi_objective=True,
                          description="Every combination of choice values."),
    "optuna": AlgorithmSpec(
        "ray.tune.search.optuna.OptunaSearch", package="optuna",  # a core dependency
        supports_grid=False, multi_objective=True, prepare=_prepare_optuna,
        description="Optuna; sampler: tpe (default), cmaes, nsga2, nsga3, gp, random, qmc."),
    "hyperopt": AlgorithmSpec(
        "ray.tune.search.hyperopt.HyperOptSearch", package="hyperopt", extra="hpo",
        supports_grid=False, description="HyperOpt's Tree-structured Parzen Estimator."),
    "bayesopt": AlgorithmSpec(
        "ray.tune.search.bayesopt.BayesOptSearch", package="bayes_opt", extra="hpo",
        supports_grid=False, max_concurrent=4,
        description="Gaussian-process Bayesian optimisation (bayesian-optimization 1.4); "
                    "uniform/loguniform values only."),
    "nevergrad": AlgorithmSpec(
        "ray.tune.search.nevergrad.NevergradSearch", package="nevergrad", extra="hpo",
        supports_grid=False, max_concurrent=4, prepare=_prepare_nevergrad,
        description="Nevergrad (evolutionary); optimizer by name: TwoPointsDE (default), "
                    "CMA, OnePlusOne, PSO, NGOpt, ..."),
    "bohb": AlgorithmSpec(
        "ray.tune.search.bohb.TuneBOHB", package="hpbandster", more_packages=("ConfigSpace",),
        extra="hpo", supports_grid=False, max_concurrent=4,
        description="BOHB (Bayesian optimisation + HyperBand); scheduler defaults to its "
                    "HyperBandForBOHB."),
    "hebo": AlgorithmSpec(
        "ray.tune.search.hebo.HEBOSearch", package="hebo", supports_grid=False,
        blocker=numpy_blocker("HEBO 0.3.6", "1.25"),
        description="HEBO (Huawei): unusable with numpy 2 (needs numpy<1.25)."),
    "ax": AlgorithmSpec(
        "ray.tune.search.ax.AxSearch", package="ax", supports_grid=False, blocker=ax_blocker,
        description="Ax / BoTorch: unusable with Ray 2.60 and ax-platform 1.x."),
}

#: The argument each Ray searcher seeds with, for a ``seed`` given in YAML.
SEED_ARGS = {"hyperopt": "random_state_seed", "bayesopt": "random_state",
             "hebo": "random_state_seed"}

#: pip names of import names, for install hints.
PIP_NAMES = {"bayes_opt": "bayesian-optimization", "ax": "ax-platform", "hebo": "HEBO"}

__all__ = ["NEVERGRAD_DEFAULT", "OPTUNA_SAMPLERS", "PIP_NAMES", "SEARCHERS", "SEED_ARGS",
           "optuna_sampler"]
