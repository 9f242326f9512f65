"""Searchers and schedulers by name or class path, built as real Ray objects (no Ray started).
Optuna with ASHA on a real local Ray: tests/e2e/test_algorithms_e2e.py.
"""

from __future__ import annotations

import pytest
from ray_objects import build_scheduler, build_searcher

from itwinai_ray.errors import ConfigurationError, MissingDependencyError, SearchSpaceError
from itwinai_ray.tuning.algorithms import (
    SCHEDULERS,
    SEARCHERS,
    AlgorithmSpec,
    resolve_metric,
    resolve_mode,
)

SPACE = {"x": {"type": "uniform", "lower": -5, "upper": 5},
         "bs": {"type": "choice", "categories": [16, 32]}}


def test_tables_are_data():
    for table in (SEARCHERS, SCHEDULERS):
        assert all(isinstance(spec, AlgorithmSpec) and spec.description for spec in table.values())
    assert SEARCHERS["optuna"].package == "optuna" and SEARCHERS["optuna"].extra is None
    assert SEARCHERS["hyperopt"].extra == "hpo"
    assert not SEARCHERS["optuna"].supports_grid


@pytest.mark.parametrize("spec", [None, "random", {"name": "random"}])
def test_random_is_rays_default_generator(spec):
    searcher, space = build_searcher(spec, "loss", "min", SPACE)
    assert searcher is None
    assert set(space) == {"x", "bs"} and not isinstance(space["bs"], dict)


def test_grid_converts_choices():
    searcher, space = build_searcher("grid", "loss", "min", {"bs": SPACE["bs"], "e": 2})
    assert searcher is None and space == {"bs": {"grid_search": [16, 32]}, "e": 2}
    with pytest.raises(SearchSpaceError, match="grid search needs discrete values: 'x'"):
        build_searcher("grid", "loss", "min", SPACE)


def test_optuna_by_name_gets_metric_and_mode():
    from ray.tune.search.optuna import OptunaSearch

    searcher, space = build_searcher({"name": "optuna", "seed": 1}, "acc", "max", SPACE)
    assert isinstance(searcher, OptunaSearch)
    assert (searcher.metric, searcher.mode) == ("acc", "max")
    assert set(space) == {"x", "bs"}


def test_optuna_rejects_grid_search_values():
    with pytest.raises(SearchSpaceError, match=(
            r"optuna cannot sample grid_search values for 'batch_size'; use type: choice")):
        build_searcher("optuna", "loss", "min",
                       {"batch_size": {"type": "grid_search", "values": [16, 32]}})


def test_max_concurrent_wraps_in_concurrency_limiter():
    from ray.tune.search import ConcurrencyLimiter

    searcher, _ = build_searcher({"name": "optuna", "max_concurrent": 2}, "loss", "min", SPACE)
    assert isinstance(searcher, ConcurrencyLimiter) and searcher.max_concurrent == 2
    with pytest.raises(ConfigurationError, match="max_concurrent is 0"):
        build_searcher({"name": "optuna", "max_concurrent": 0}, "loss", "min", SPACE)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(SEARCHERS, "fake", AlgorithmSpec("nowhere.Fake", package="no_such_pkg_x",
                                                         extra="hpo", description="test"))
    with pytest.raises(MissingDependencyError, match=r"no_such_pkg_x.*itwinai-ray\[hpo\]"):
        build_searcher("fake", "loss", "min", SPACE)


@pytest.mark.parametrize("name, cls_name, time_attr", [
    ("fifo", "FIFOScheduler", None),
    ("asha", "AsyncHyperBandScheduler", "training_iteration"),
    ("median", "MedianStoppingRule", "training_iteration"),
])
def test_scheduler_by_name(name, cls_name, time_attr):
    scheduler = build_scheduler(name, "acc", "max", max_t=5)
    assert type(scheduler).__name__ == cls_name
    if time_attr:
        assert (scheduler.metric, scheduler._mode) == ("acc", "max")
        assert scheduler._time_attr == time_attr


def test_asha_defaults_to_trainer_epochs_and_user_args_win():
    scheduler = build_scheduler("asha", "loss", "min", max_t=7)
    assert scheduler._max_t == 7 and scheduler._brackets[0]._rungs[-1][0] == 1  # grace 1
    scheduler = build_scheduler({"name": "asha", "grace_period": 2, "reduction_factor": 3,
                                 "max_t": 9, "metric": "acc", "mode": "max"}, "loss", "min", 7)
    assert (scheduler._max_t, scheduler._reduction_factor) == (9, 3)
    assert (scheduler.metric, scheduler._mode) == ("acc", "max")


@pytest.mark.parametrize("kwargs, match", [
    ({"grace_period": 5}, r"grace_period is 5, but must be <= max_t \(3\)"),
    ({"grace_period": 0}, r"grace_period is 0, but must be >= 1"),
    ({"reduction_factor": 1}, r"reduction_factor is 1, but must be >= 2"),
    ({"brackets": 0}, r"brackets is 0, but must be >= 1"),
    ({"max_t": 0}, r"max_t is 0, but must be > 0"),
    ({"grace": 2}, r"no argument 'grace'\. Did you mean 'grace_period'\?"),
])
def test_asha_validation_names_values(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        build_scheduler({"name": "asha", **kwargs}, "loss", "min", max_t=3)


def test_median_validation():
    with pytest.raises(ConfigurationError, match="min_samples_required is 0"):
        build_scheduler({"name": "median", "min_samples_required": 0}, "loss", "min")


def test_target_and_class_path_forms():
    from ray.tune.schedulers import HyperBandScheduler, MedianStoppingRule
    from ray.tune.search.optuna import OptunaSearch

    hb = build_scheduler({"_target_": "ray.tune.schedulers.HyperBandScheduler", "max_t": 4},
                         "loss", "min")
    assert isinstance(hb, HyperBandScheduler) and hb.metric == "loss"
    med = build_scheduler({"class_path": "ray.tune.schedulers.MedianStoppingRule",
                           "init_args": {"grace_period": 2}}, "acc", "max")
    assert isinstance(med, MedianStoppingRule) and med._grace_period == 2
    # a known class named by path still gets the table's defaults and checks
    asha = build_scheduler({"_target_": "ray.tune.schedulers.ASHAScheduler"}, "loss", "min", 6)
    assert asha._max_t == 6
    with pytest.raises(ConfigurationError, match="grace_period is 9"):
        build_scheduler({"class_path": "ray.tune.schedulers.ASHAScheduler",
                         "init_args": {"grace_period": 9}}, "loss", "min", 6)
    opt, _ = build_searcher({"_target_": "ray.tune.search.optuna.OptunaSearch",
                             "kwargs": {"seed": 3}}, "loss", "min", SPACE)
    assert isinstance(opt, OptunaSearch) and opt.metric == "loss"
    with pytest.raises(SearchSpaceError, match="optuna cannot sample grid_search"):
        build_searcher({"class_path": "ray.tune.search.optuna.OptunaSearch"}, "loss", "min",
                       {"b": {"grid_search": [1, 2]}})


@pytest.mark.parametrize("spec, match", [
    ({"_target_": "ray.tune.schedulers.NoSuchScheduler"}, r"Cannot import the scheduler"),
    ({"_target_": "ray.tune.search.optuna.OptunaSearch"}, r"is not a Ray Tune scheduler"),
    ({"class_path": "ray.tune.schedulers.FIFOScheduler", "grace": 1}, r"under init_args"),
    ({"grace_period": 1}, r"needs 'name'.*'_target_' or 'class_path'"),
])
def test_bad_class_specs(spec, match):
    with pytest.raises(ConfigurationError, match=match):
        build_scheduler(spec, "loss", "min")


def test_instances_pass_through_untouched():
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    asha = ASHAScheduler(max_t=3)
    assert build_scheduler(asha, "loss", "min", 10) is asha and asha.metric is None
    opt = OptunaSearch()
    searcher, space = build_searcher(opt, "loss", "min", SPACE)
    assert searcher is opt and opt.metric is None and set(space) == {"x", "bs"}
    with pytest.raises(SearchSpaceError, match="cannot sample grid_search values for 'b'"):
        build_searcher(opt, "loss", "min", {"b": {"grid_search": [1]}})


@pytest.mark.parametrize("build, table", [(build_scheduler, "fifo, asha, median"),
                                          (lambda s, m, o: build_searcher(s, m, o, {}),
                                           "random, grid, optuna")])
def test_unknown_name_lists_names_and_closest(build, table):
    name = "ashaa" if "asha" in table else "optna"
    with pytest.raises(ConfigurationError, match=(
            rf"Unknown \w+ '{name}'\. Did you mean '(asha|optuna)'\? Available: {table}")):
        build(name, "loss", "min")


@pytest.mark.parametrize("metric, mode, match", [
    ("loss", "minimize", r"mode is 'minimize', but must be 'min' or 'max'"),
    ("loss", None, r"mode is None"),
    ("", "min", r"metric is '', but must be a non-empty"),
])
def test_metric_and_mode_validation(metric, mode, match):
    with pytest.raises(ConfigurationError, match=match):
        build_scheduler("asha", metric, mode, 3)
    with pytest.raises(ConfigurationError, match=match):
        build_searcher("random", metric, mode, {})


def test_resolve_metric_and_mode():
    from ray.tune.schedulers import ASHAScheduler

    assert resolve_metric("acc", {"name": "asha", "metric": "val"}) == "acc"
    assert resolve_metric(None, {"name": "asha", "metric": "val"}) == "val"
    assert resolve_metric(None, {"class_path": "x", "init_args": {"metric": "v2"}}) == "v2"
    assert resolve_metric(None, ASHAScheduler(metric="obj", mode="max")) == "obj"
    assert resolve_metric(None, ASHAScheduler()) == "loss"
    assert resolve_metric(None, "asha") == "loss" and resolve_metric(None, None) == "loss"
    assert resolve_mode("max", {"mode": "min"}) == "max"
    assert resolve_mode(None, {"mode": "max"}) == "max"
    assert resolve_mode(None, ASHAScheduler(metric="m", mode="max")) == "max"
    assert resolve_mode(None, None) == "min"


def test_adding_an_algorithm_is_one_table_line(monkeypatch):
    """A new row (a name the table does not have) is all it takes: the name is then accepted,
    suggested and built with the row's defaults and epochs argument."""
    from ray.tune.schedulers import HyperBandScheduler

    assert "sync_hyperband" not in SCHEDULERS
    with pytest.raises(ConfigurationError, match="Unknown scheduler 'sync_hyperband'"):
        build_scheduler("sync_hyperband", "loss", "min", max_t=4)
    monkeypatch.setitem(SCHEDULERS, "sync_hyperband", AlgorithmSpec(
        "ray.tune.schedulers.HyperBandScheduler", epochs_arg="max_t",
        defaults={"reduction_factor": 4}, description="HyperBand, added by one line"))
    scheduler = build_scheduler("sync_hyperband", "acc", "max", max_t=4)
    assert isinstance(scheduler, HyperBandScheduler)
    assert (scheduler._max_t_attr, scheduler._eta) == (4, 4)  # epochs_arg and defaults
    assert (scheduler.metric, scheduler._mode) == ("acc", "max")
    with pytest.raises(ConfigurationError, match="Did you mean 'sync_hyperband'"):
        build_scheduler("sync_hyperbnd", "loss", "min", max_t=4)


def test_the_core_resolves_neutral_specs_and_checks_them_before_ray():
    """The plan holds no Ray object: names, class paths and arguments. What only the Ray
    class can tell (a constructor argument) still fails here, before Ray starts."""
    from itwinai_ray.tuning.algorithms import AlgorithmChoice, resolve_scheduler, resolve_searcher
    from itwinai_ray.tuning.domains import is_domain

    choice, space = resolve_searcher({"name": "optuna", "seed": 1}, "loss", "min", SPACE)
    assert isinstance(choice, AlgorithmChoice) and choice.built is None
    assert choice.path == "ray.tune.search.optuna.OptunaSearch" and choice.kwargs == {"seed": 1}
    assert all(is_domain(v) for v in space.values())
    asha = resolve_scheduler({"_target_": "ray.tune.schedulers.AsyncHyperBandScheduler"},
                             "loss", "min", 4)
    assert asha.name == "asha"  # the class of a table row: the row's defaults apply
    with pytest.raises(ConfigurationError, match=r"'asha' has no argument 'grace'\. Did you "
                                                 r"mean 'grace_period'"):
        resolve_scheduler({"name": "asha", "grace": 1}, "loss", "min", 4)
