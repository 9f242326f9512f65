"""Every searcher by its short name: built from YAML specs and checked before Ray starts.
Each run for real: tests/e2e/test_searchers_e2e.py.
"""

from __future__ import annotations

import pytest
from ray_objects import build_algorithms, build_searcher, ray_space

from itwinai_ray.errors import ConfigurationError, SearchSpaceError
from itwinai_ray.tuning.algorithms import SEARCHERS

SPACE = {"x": {"type": "uniform", "lower": -4, "upper": 4},
         "y": {"type": "uniform", "lower": -4, "upper": 4}}
WITH_CHOICE = {**SPACE, "bs": {"type": "choice", "categories": [16, 32]}}


def _inner(searcher):
    return getattr(searcher, "searcher", searcher)  # unwrap a ConcurrencyLimiter


# ------------------------------------------------------------------ building (no Ray started)
@pytest.mark.parametrize("sampler, cls", [
    (None, "OptunaSearch default"), ("tpe", "TPESampler"), ("cmaes", "CmaEsSampler"),
    ("nsga2", "NSGAIISampler"), ("gp", "GPSampler"), ("random", "RandomSampler"),
    ({"name": "nsga2", "population_size": 4}, "NSGAIISampler"),
])
def test_optuna_samplers_by_name(sampler, cls):
    spec = {"name": "optuna", "seed": 3} if sampler is None else \
        {"name": "optuna", "sampler": sampler, "seed": 3}
    searcher, _ = build_searcher(spec, "loss", "min", SPACE)
    if sampler is None:
        assert searcher._sampler is None and searcher._seed == 3  # Ray builds TPE(seed=3)
    else:
        import optuna

        # (nsga2 may be its picklable subclass LockFreeNSGAIISampler: test_multi_objective)
        assert isinstance(searcher._sampler, getattr(optuna.samplers, cls))
        assert type(searcher._sampler).__name__.endswith(cls)
        assert searcher._seed is None  # the seed went into the sampler


def test_optuna_sampler_seed_makes_runs_repeatable():
    a, _ = build_searcher({"name": "optuna", "sampler": "random", "seed": 5}, "l", "min", SPACE)
    b, _ = build_searcher({"name": "optuna", "sampler": "random", "seed": 5}, "l", "min", SPACE)
    for s in (a, b):
        s.set_search_properties(None, None, ray_space(SPACE))
    assert a.suggest("t1") == b.suggest("t1")


@pytest.mark.parametrize("spec, error, match", [
    ({"name": "optuna", "sampler": "cmaz"}, ConfigurationError,
     r"Unknown Optuna sampler 'cmaz'\. Did you mean 'cmaes'\? Available: tpe, cmaes"),
    ({"name": "optuna", "sampler": {"name": "nsga2", "populaton_size": 4}}, ConfigurationError,
     r"sampler 'nsga2' has no argument 'populaton_size'\. Did you mean 'population_size'\?"),
    ({"name": "nevergrad", "optimizer": "TwoPointDE"}, ConfigurationError,
     r"Unknown Nevergrad optimizer 'TwoPointDE'\. Did you mean 'TwoPointsDE'\?"),
    ({"name": "bayesopt", "utility": 1}, ConfigurationError,
     r"searcher 'bayesopt' has no argument 'utility'\. Did you mean 'utility_kwargs'\?"),
    ("hyperop", ConfigurationError, r"Unknown searcher 'hyperop'\. Did you mean 'hyperopt'\?"),
    ("hebo", ConfigurationError, r"'hebo' cannot be used here: HEBO 0\.3\.6 needs numpy<1\.25"),
])
def test_bad_searcher_specs_name_the_fix(spec, error, match):
    with pytest.raises(error, match=match):
        build_searcher(spec, "loss", "min", SPACE)


def test_ax_names_its_blocker():
    with pytest.raises(ConfigurationError, match=r"'ax' cannot be used here: Ray 2\.60's "
                                                 r"AxSearch does not work with ax-platform 1\.x"):
        build_searcher("ax", "loss", "min", SPACE)


def test_nevergrad_by_name_with_workers_and_budget():
    searcher, _ = build_searcher({"name": "nevergrad", "optimizer": "CMA"}, "loss", "min", SPACE,
                                 num_samples=12)
    inner = _inner(searcher)
    assert searcher.max_concurrent == 4  # a ConcurrencyLimiter: the optimizer is told
    assert inner._optimizer_kwargs == {"num_workers": 4, "budget": 12}
    import nevergrad as ng

    assert inner._opt_factory is ng.optimizers.registry["CMA"]
    # NGOpt picks its algorithm from the budget, and fails at the first ask without one
    with pytest.raises(ConfigurationError, match="NGOpt needs a budget"):
        build_searcher({"name": "nevergrad", "optimizer": "NGOpt"}, "loss", "min", SPACE)
    build_searcher({"name": "nevergrad", "optimizer": "NGOpt"}, "l", "min", SPACE, num_samples=8)


def test_seed_is_renamed_to_each_searchers_argument():
    import numpy as np

    hyperopt, _ = build_searcher({"name": "hyperopt", "seed": 7}, "loss", "min", SPACE)
    assert hyperopt.rstate.randint(1000) == np.random.RandomState(7).randint(1000)
    bayes, _ = build_searcher({"name": "bayesopt", "seed": 7}, "loss", "min", SPACE)
    assert _inner(bayes)._random_state == 7


def test_concurrency_limiter_where_the_searcher_needs_one():
    from ray.tune.search import ConcurrencyLimiter

    for name in ("bayesopt", "nevergrad", "bohb"):
        searcher, _ = build_searcher(name, "loss", "min", SPACE)
        assert isinstance(searcher, ConcurrencyLimiter) and searcher.max_concurrent == 4, name
    searcher, _ = build_searcher({"name": "bayesopt", "max_concurrent": 2}, "loss", "min", SPACE)
    assert searcher.max_concurrent == 2
    for name in ("optuna", "hyperopt"):
        assert not isinstance(build_searcher(name, "loss", "min", SPACE)[0], ConcurrencyLimiter)


def test_space_the_searcher_cannot_sample_fails_before_ray():
    with pytest.raises(SearchSpaceError, match=r"'bayesopt' cannot use this search space: "
                                               r"BayesOpt does not support .*Categorical"):
        build_searcher("bayesopt", "loss", "min", WITH_CHOICE)
    with pytest.raises(SearchSpaceError, match="hyperopt cannot sample grid_search"):
        build_searcher("hyperopt", "loss", "min", {"b": {"grid_search": [1, 2]}})


def test_bohb_gets_its_hyperband_automatically():
    from ray.tune.schedulers import HyperBandForBOHB

    searcher, _, scheduler = build_algorithms("bohb", None, "loss", "min", SPACE, max_t=9)
    assert type(_inner(searcher)).__name__ == "TuneBOHB"
    assert isinstance(scheduler, HyperBandForBOHB) and scheduler._max_t_attr == 9
    # hyperband named with bohb means BOHB's own HyperBand, with the user's arguments
    _, _, scheduler = build_algorithms("bohb", {"name": "hyperband", "reduction_factor": 2},
                                       "loss", "min", SPACE, max_t=9)
    assert isinstance(scheduler, HyperBandForBOHB) and scheduler._eta == 2
    with pytest.raises(ConfigurationError, match="bohb searcher needs its HyperBandForBOHB"):
        build_algorithms("bohb", "asha", "loss", "min", SPACE, max_t=9)
    with pytest.raises(ConfigurationError, match="works only with search_alg: bohb"):
        build_algorithms("optuna", "bohb", "loss", "min", SPACE, max_t=9)


def test_table_rows_name_package_and_extra():
    for name in ("hyperopt", "bayesopt", "nevergrad", "bohb"):
        assert SEARCHERS[name].extra == "hpo" and SEARCHERS[name].description
    assert SEARCHERS["optuna"].extra is None  # a core dependency (every run's journal)
    assert SEARCHERS["optuna"].multi_objective and not SEARCHERS["bayesopt"].multi_objective
