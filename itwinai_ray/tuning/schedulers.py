"""The scheduler table: short names, their Ray classes, argument checks and search-space hooks.

``time_attr`` is ``training_iteration`` (one per epoch) for every scheduler, so ``max_t``,
``grace_period`` and ``perturbation_interval`` count epochs.

PBT and PB2 take what they perturb from the (neutral) search space unless given; the backend
turns the domains in ``hyperparam_mutations`` into its own when it builds the scheduler:

- ``pbt``: ``hyperparam_mutations`` = every sampled key: a ``choice`` becomes its list of
  categories (PBT shifts to a neighbour), a numeric domain stays a domain (PBT multiplies the
  value by 0.8 or 1.2, or resamples it with ``resample_probability``). A perturbed value is
  clipped to the bounds the search space declares (Ray's PBT alone would leave them: a
  ``uniform(0, 1)`` dropout could become 1.2).
- ``pb2``: ``hyperparam_bounds`` = ``[lower, upper]`` of every float domain (``uniform``,
  ``loguniform``...); PB2's GP model explores only continuous values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning._algorithm_spec import AlgorithmSpec, BuildContext, require
from itwinai_ray.tuning.domains import Choice, float_bounds, int_bounds, is_domain


def _check_successive_halving(name: str, a: Mapping[str, Any]) -> None:
    """Successive-halving arguments, checked before Ray's bare asserts."""
    max_t, rf = a["max_t"], a["reduction_factor"]
    require(name, max_t > 0, f"max_t is {max_t}, but must be > 0")
    require(name, rf >= 2, f"reduction_factor is {rf}, but must be >= 2")
    if "grace_period" in a:
        grace = a["grace_period"]
        require(name, grace >= 1, f"grace_period is {grace}, but must be >= 1")
        require(name, grace <= max_t, f"grace_period is {grace}, but must be <= max_t "
                f"({max_t}). Lower grace_period or train for more epochs")
    if "brackets" in a:
        require(name, a["brackets"] >= 1, f"brackets is {a['brackets']}, but must be >= 1")


def _check_median(name: str, a: Mapping[str, Any]) -> None:
    grace, samples = a["grace_period"], a["min_samples_required"]
    require(name, grace >= 0, f"grace_period is {grace}, but must be >= 0")
    require(name, samples >= 1, f"min_samples_required is {samples}, but must be >= 1")


def _check_population(name: str, a: Mapping[str, Any]) -> None:
    interval, q = a["perturbation_interval"], a["quantile_fraction"]
    require(name, interval > 0, f"perturbation_interval is {interval}, but must be > 0 (epochs)")
    require(name, 0 <= q <= 0.5, f"quantile_fraction is {q}, but must be in [0, 0.5]")
    if "resample_probability" in a:
        p = a["resample_probability"]
        require(name, 0 <= p <= 1, f"resample_probability is {p}, but must be in [0, 1]")


def default_perturbation_interval(max_t: int | None) -> int:
    """Every quarter of the epochs (at least every epoch): PBT exploits a few times per trial."""
    return max(1, (max_t or 4) // 4)


def mutations_from_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """PBT ``hyperparam_mutations`` from a built search space (see the module docstring)."""
    out: dict[str, Any] = {}
    for key, domain in space.items():
        if isinstance(domain, Choice):
            out[key] = list(domain.categories)
        elif is_domain(domain):
            out[key] = domain
        elif isinstance(domain, Mapping) and "grid_search" in domain:
            out[key] = list(domain["grid_search"])
    return out


def bounds_from_space(space: Mapping[str, Any]) -> dict[str, list[float]]:
    """PB2 ``hyperparam_bounds``: ``[lower, upper]`` of every float domain."""
    return float_bounds(space)


class ClipToBounds:
    """PBT ``custom_explore_fn``: keeps perturbed numeric values inside the search space's
    bounds (``[lower, upper]`` of a float, ``[lower, upper - 1]`` of Ray's integer domain)."""

    def __init__(self, space: Mapping[str, Any]):
        self.bounds: dict[str, tuple[float, float]] = {
            k: (lower, upper) for k, (lower, upper) in bounds_from_space(space).items()}
        self.bounds.update(int_bounds(space))

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, (lower, upper) in self.bounds.items():
            if isinstance(config.get(key), (int, float)):
                config[key] = type(config[key])(min(max(config[key], lower), upper))
        return config


def _prepare_pbt(kwargs: dict[str, Any], ctx: BuildContext) -> dict[str, Any]:
    if not kwargs.get("hyperparam_mutations") and not kwargs.get("custom_explore_fn"):
        kwargs["hyperparam_mutations"] = mutations_from_space(ctx.space)
        if kwargs["hyperparam_mutations"]:
            kwargs["custom_explore_fn"] = ClipToBounds(ctx.space)
    if not kwargs["hyperparam_mutations"] and not kwargs.get("custom_explore_fn"):
        raise ConfigurationError(
            f"Scheduler {ctx.name!r} has nothing to perturb: give a search space "
            f"(search_space: {{optim_lr: {{type: loguniform, ...}}}}) or "
            f"hyperparam_mutations.")
    return kwargs


def _prepare_pb2(kwargs: dict[str, Any], ctx: BuildContext) -> dict[str, Any]:
    if not kwargs.get("hyperparam_bounds"):
        kwargs["hyperparam_bounds"] = bounds_from_space(ctx.space)
    if not kwargs["hyperparam_bounds"]:
        raise ConfigurationError(
            f"Scheduler {ctx.name!r} explores continuous values only, and the search space "
            f"has no float key (uniform, loguniform, ...). Add one, or give "
            f"hyperparam_bounds: {{key: [lower, upper]}}.")
    return kwargs


def _prepare_interval(kwargs: dict[str, Any], ctx: BuildContext) -> dict[str, Any]:
    kwargs.setdefault("perturbation_interval", default_perturbation_interval(ctx.max_t))
    return kwargs


def _pbt(kwargs: dict[str, Any], ctx: BuildContext) -> dict[str, Any]:
    return _prepare_pbt(_prepare_interval(kwargs, ctx), ctx)


def _pb2(kwargs: dict[str, Any], ctx: BuildContext) -> dict[str, Any]:
    return _prepare_pb2(_prepare_interval(kwargs, ctx), ctx)


SCHEDULERS: dict[str, AlgorithmSpec] = {
    "fifo": AlgorithmSpec("ray.tune.schedulers.FIFOScheduler",
                          multi_objective=True, description="Run every trial to the end."),
    "asha": AlgorithmSpec("ray.tune.schedulers.ASHAScheduler", epochs_arg="max_t",
                          defaults={"grace_period": 1}, check=_check_successive_halving,
                          description="Asynchronous successive halving: stop poor trials early."),
    "median": AlgorithmSpec("ray.tune.schedulers.MedianStoppingRule", check=_check_median,
                            defaults={"grace_period": 1, "min_samples_required": 3},
                            description="Stop trials worse than the median of the others."),
    "hyperband": AlgorithmSpec("ray.tune.schedulers.HyperBandScheduler", epochs_arg="max_t",
                               check=_check_successive_halving,
                               description="Synchronous HyperBand brackets (pauses trials)."),
    "bohb": AlgorithmSpec("ray.tune.schedulers.HyperBandForBOHB", epochs_arg="max_t",
                          check=_check_successive_halving,
                          description="HyperBand for the bohb searcher (chosen with it)."),
    "pbt": AlgorithmSpec("ray.tune.schedulers.PopulationBasedTraining", check=_check_population,
                         prepare=_pbt, needs_space=True,
                         description="Population based training: clone good trials' "
                                     "checkpoints, perturb their hyperparameters."),
    "pb2": AlgorithmSpec("ray.tune.schedulers.pb2.PB2", package="sklearn",
                         check=_check_population, prepare=_pb2, needs_space=True,
                         description="PB2: PBT with a GP bandit choosing the new values."),
}

#: Schedulers that replace the searcher: they only work with random/grid sampling.
POPULATION_BASED = ("pbt", "pb2")

__all__ = ["POPULATION_BASED", "SCHEDULERS", "bounds_from_space", "default_perturbation_interval",
           "mutations_from_space"]
