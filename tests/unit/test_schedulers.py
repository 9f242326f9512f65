"""Every scheduler by its short name: argument checks, what PBT/PB2 take from the search
space, the one metric a scheduler needs. A real run of each: tests/e2e/test_schedulers_e2e.py.
"""

from __future__ import annotations

import pytest
from ray_objects import build_algorithms, build_scheduler

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning.algorithms import SCHEDULERS
from itwinai_ray.tuning.search_space import build_search_space

SPACE = {"lr": {"type": "loguniform", "lower": 1.0e-3, "upper": 1.0},
         "bs": {"type": "choice", "categories": [16, 32, 64]},
         "fixed": 3}


# ------------------------------------------------------------------ building (no Ray started)
@pytest.mark.parametrize("name, cls", [
    ("hyperband", "HyperBandScheduler"), ("pbt", "PopulationBasedTraining"), ("pb2", "PB2"),
])
def test_new_schedulers_by_name(name, cls):
    scheduler = build_scheduler(name, "acc", "max", max_t=8,
                                search_space=build_search_space(SPACE))
    assert type(scheduler).__name__ == cls
    assert (scheduler.metric, scheduler._mode) == ("acc", "max")
    assert scheduler._time_attr == "training_iteration"


def test_hyperband_max_t_is_the_epochs_and_checked():
    assert build_scheduler("hyperband", "loss", "min", max_t=6)._max_t_attr == 6
    with pytest.raises(ConfigurationError, match=r"'hyperband': reduction_factor is 1"):
        build_scheduler({"name": "hyperband", "reduction_factor": 1}, "loss", "min", 6)


def test_pbt_mutations_come_from_the_search_space():
    from ray.tune.search.sample import Float

    space = build_search_space(SPACE)
    pbt = build_scheduler("pbt", "loss", "min", max_t=8, search_space=space)
    mutations = pbt._hyperparam_mutations
    assert set(mutations) == {"lr", "bs"}  # not the constant
    assert isinstance(mutations["lr"], Float) and mutations["bs"] == [16, 32, 64]
    assert pbt._perturbation_interval == 2  # a quarter of the epochs
    own = build_scheduler({"name": "pbt", "hyperparam_mutations": {"bs": [8, 16]},
                           "perturbation_interval": 1}, "loss", "min", 8, search_space=space)
    assert own._hyperparam_mutations == {"bs": [8, 16]} and own._perturbation_interval == 1


def test_pb2_bounds_come_from_float_keys():
    pb2 = build_scheduler("pb2", "loss", "min", max_t=4, search_space=build_search_space(SPACE))
    assert pb2._hyperparam_bounds == {"lr": [1.0e-3, 1.0]}
    with pytest.raises(ConfigurationError, match="'pb2' explores continuous values only"):
        build_scheduler("pb2", "loss", "min", 4,
                        search_space=build_search_space({"bs": SPACE["bs"]}))


@pytest.mark.parametrize("spec, match", [
    ({"name": "pbt", "perturbation_interval": 0}, r"perturbation_interval is 0, but must be > 0"),
    ({"name": "pbt", "quantile_fraction": 0.7}, r"quantile_fraction is 0\.7, but must be in"),
    ({"name": "pbt", "resample_probability": 2}, r"resample_probability is 2, but must be in"),
    ({"name": "pbt", "mutations": {}}, r"no argument 'mutations'\. Did you mean "
                                       r"'hyperparam_mutations'\?"),
    ("hyperbnd", r"Unknown scheduler 'hyperbnd'\. Did you mean 'hyperband'\?"),
])
def test_bad_scheduler_specs_name_the_fix(spec, match):
    with pytest.raises(ConfigurationError, match=match):
        build_scheduler(spec, "loss", "min", 8, search_space=build_search_space(SPACE))


def test_pbt_without_anything_to_perturb():
    with pytest.raises(ConfigurationError, match="'pbt' has nothing to perturb"):
        build_scheduler("pbt", "loss", "min", 4, search_space={"fixed": 1})


@pytest.mark.parametrize("scheduler", ["pbt", "pb2"])
def test_population_based_refuse_a_searcher(scheduler):
    with pytest.raises(ConfigurationError, match=rf"The {scheduler} scheduler chooses the "
                                                 r"hyperparameters itself .* 'optuna'"):
        build_algorithms("optuna", scheduler, "loss", "min", SPACE, max_t=4)
    searcher, _, built = build_algorithms(None, scheduler, "loss", "min", SPACE, max_t=4)
    assert searcher is None and built is not None


def test_table_lists_every_scheduler_the_issue_names():
    assert {"fifo", "asha", "median", "hyperband", "bohb", "pbt", "pb2"} <= set(SCHEDULERS)


def test_hyperband_warns_when_trials_cannot_all_run_at_once(caplog):
    from itwinai_ray.backends.ray.driver import _warn_if_synchronous

    hyperband = build_scheduler("hyperband", "loss", "min", max_t=4)
    _warn_if_synchronous(hyperband, concurrency=6, num_samples=6)
    _warn_if_synchronous(build_scheduler("asha", "loss", "min", max_t=4), 2, 6)
    assert not caplog.records
    _warn_if_synchronous(hyperband, concurrency=4, num_samples=6)
    assert "only 4 of the 6 trials run at once" in caplog.text and "'asha'" in caplog.text
