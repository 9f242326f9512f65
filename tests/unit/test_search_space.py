"""Search-space building and checks, on real ray.tune domains (no Ray cluster)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from itwinai_ray.errors import ConfigurationError, SearchSpaceError
from itwinai_ray.tuning.domains import Float
from itwinai_ray.tuning.search_space import (
    TYPES,
    build_search_space,
    count_grid_points,
    describe,
    grid_keys,
    to_grid,
    validate_keys,
)

N = 200


def _samples(entry: dict) -> list:
    from itwinai_ray.backends.ray import translate

    domain = translate.to_ray(build_search_space({"k": entry})["k"])
    values = domain.sample(size=N, random_state=np.random.default_rng(0))
    return list(values)


def test_choice():
    values = _samples({"type": "choice", "categories": [16, 32, 64]})
    assert set(values) == {16, 32, 64}


def test_uniform():
    values = _samples({"type": "uniform", "lower": -2, "upper": 3})
    assert all(-2 <= v <= 3 for v in values) and max(values) - min(values) > 4


def test_quniform_multiples_of_q():
    values = _samples({"type": "quniform", "lower": 0.0, "upper": 1.0, "q": 0.25})
    assert set(round(v, 9) for v in values) <= {0.0, 0.25, 0.5, 0.75, 1.0}


def test_loguniform_is_log_scaled_and_accepts_string_bounds():
    # YAML 1.1 (PyYAML) reads 1e-4 as the string "1e-4".
    values = np.array(_samples({"type": "loguniform", "lower": "1e-4", "upper": "1e-1"}))
    assert values.min() >= 1e-4 and values.max() <= 1e-1
    # log-uniform: about a third of the samples per decade, so many below 1e-3.
    assert (values < 1e-3).mean() > 0.2


def test_qloguniform():
    values = _samples({"type": "qloguniform", "lower": 1e-3, "upper": 1.0, "q": 1e-3})
    assert all(1e-3 <= v <= 1.0 and math.isclose(v / 1e-3, round(v / 1e-3)) for v in values)


def test_randint_is_int_upper_exclusive():
    values = _samples({"type": "randint", "lower": 1, "upper": 4})
    assert set(values) == {1, 2, 3} and all(isinstance(v, (int, np.integer)) for v in values)


def test_qrandint_multiples_of_q():
    values = _samples({"type": "qrandint", "lower": 8, "upper": 64, "q": 8})
    assert set(values) <= set(range(8, 65, 8))
    assert all(isinstance(v, (int, np.integer)) for v in values)


def test_lograndint_and_qlograndint():
    values = _samples({"type": "lograndint", "lower": 1, "upper": 1000, "base": 10})
    assert all(isinstance(v, (int, np.integer)) and 1 <= v < 1000 for v in values)
    assert sum(v < 10 for v in values) > 0.2 * N
    values = _samples({"type": "qlograndint", "lower": 2, "upper": 64, "q": 2})
    assert all(v % 2 == 0 and 2 <= v <= 64 for v in values)


def test_randn_and_qrandn():
    values = np.array(_samples({"type": "randn", "mean": 5, "sd": 0.1}))
    assert abs(values.mean() - 5) < 0.05 and values.std() < 0.2
    default = np.array(_samples({"type": "randn"}))
    assert abs(default.mean()) < 0.3 and 0.7 < default.std() < 1.3
    q = _samples({"type": "qrandn", "mean": 0, "sd": 2, "q": 0.5})
    assert all(math.isclose(v / 0.5, round(v / 0.5)) for v in q)


def test_grid_search_constants_and_passthrough():
    from ray import tune

    domain = tune.uniform(0, 1)
    space = build_search_space({
        "g": {"type": "grid_search", "values": [1, 2]},
        "raw_grid": {"grid_search": ["a", "b", "c"]},
        "d": domain,
        "epochs": 3, "name": "x", "nested": {"a": 1},
    })
    assert space["g"] == {"grid_search": [1, 2]}
    assert space["raw_grid"] == {"grid_search": ["a", "b", "c"]}
    assert space["d"] == Float(0, 1)  # a ray.tune domain, read into a neutral one
    assert (space["epochs"], space["name"], space["nested"]) == (3, "x", {"a": 1})
    assert build_search_space(space) == space  # idempotent
    assert build_search_space(None) == {}


@pytest.mark.parametrize("entry, match", [
    ({"type": "loguniformm", "lower": 1, "upper": 2}, r"'k': unknown type 'loguniformm'\. "
                                                      r"Did you mean 'loguniform'\? Valid types"),
    ({"type": "uniform", "lower": 0}, r"'k': uniform needs 'upper'\. Accepted parameters: "
                                      r"lower, upper"),
    ({"type": "uniform", "lower": 0, "upper": 1, "q": 1}, r"uniform does not take 'q'"),
    ({"type": "choice", "values": [1]}, r"choice does not take 'values'.*categories"),
    ({"type": "uniform", "lower": 2, "upper": 1}, r"lower <= upper, got lower=2.0, upper=1.0"),
    ({"type": "randint", "lower": 3, "upper": 3}, r"lower < upper \(upper is exclusive\)"),
    ({"type": "loguniform", "lower": 0, "upper": 1}, r"loguniform needs lower > 0"),
    ({"type": "lograndint", "lower": 0, "upper": 8}, r"lograndint needs lower > 0"),
    ({"type": "qloguniform", "lower": -1, "upper": 1, "q": 0.1}, r"needs lower > 0"),
    ({"type": "choice", "categories": []}, r"choice has an empty 'categories' list"),
    ({"type": "grid_search", "values": []}, r"grid_search has an empty 'values' list"),
    ({"type": "choice", "categories": "abc"}, r"'categories' must be a list"),
    ({"type": "quniform", "lower": 0, "upper": 1, "q": 0}, r"needs q > 0, got q=0"),
    ({"type": "qrandint", "lower": 0, "upper": 8, "q": -2}, r"needs q > 0"),
    ({"type": "quniform", "lower": 0.15, "upper": 1, "q": 0.1}, r"multiples of q=0.1.*lower"),
    ({"type": "qrandint", "lower": 1, "upper": 3, "q": 4}, r"no multiple of q=4"),
    ({"type": "uniform", "lower": "abc", "upper": 1}, r"'lower' must be a number, got 'abc'"),
    ({"type": "uniform", "lower": [0], "upper": 1}, r"'lower' must be a number"),
    ({"type": "uniform", "lower": True, "upper": 1}, r"'lower' must be a number"),
    ({"type": "randint", "lower": 0.5, "upper": 4}, r"must be an integer for randint"),
    ({"type": "randn", "sd": 0}, r"randn needs sd > 0"),
    ({"lower": 0, "upper": 1}, r"looks like a distribution .* no 'type'"),
    ({"grid_search": []}, r"empty"),
])
def test_bad_entries_name_the_key_and_fix(entry, match):
    with pytest.raises(SearchSpaceError, match=match) as info:
        build_search_space({"k": entry})
    assert "'k'" in str(info.value)
    assert isinstance(info.value, ConfigurationError)


def test_every_type_is_documented_with_its_parameters():
    assert set(TYPES) >= {"choice", "uniform", "quniform", "loguniform", "qloguniform",
                          "randint", "qrandint", "lograndint", "randn", "qrandn", "grid_search"}


def test_validate_keys_suggests_close_match():
    validate_keys(["optim_lr"], ["optim_lr", "batch_size"], "DigitsTrainer")
    with pytest.raises(SearchSpaceError, match=(
            r"Search-space key 'learning_rate' is not read by DigitsTrainer: it is not a "
            r"TrainingConfiguration field, a key of the trainer's config, or a constructor "
            r"argument\. Did you mean 'optim_lr'\?")):
        validate_keys(["learning_rate"], ["optim_lr", "batch_size"], "DigitsTrainer")
    with pytest.raises(SearchSpaceError, match=r"Did you mean 'batch_size'\?"):
        validate_keys(["bs"], ["optim_lr", "batch_size"], "DigitsTrainer")
    with pytest.raises(SearchSpaceError, match=r"Did you mean 'optim_lr'\?"):
        validate_keys(["optim_lrr"], ["optim_lr", "batch_size"], "DigitsTrainer")
    with pytest.raises(SearchSpaceError, match=r"'zzz'.*Known keys: a, b"):
        validate_keys(["zzz"], ["b", "a"], "T")


def test_validate_keys_reports_every_unread_key():
    with pytest.raises(SearchSpaceError) as info:
        validate_keys(["a", "x", "y"], ["a"], "T", explain="no")
    assert "'x'" in str(info.value) and "'y'" in str(info.value)


def test_to_grid_and_count():
    space = build_search_space({
        "bs": {"type": "choice", "categories": [16, 32]},
        "opt": {"grid_search": ["adam", "sgd", "rmsprop"]},
        "epochs": 2,
    })
    assert count_grid_points(space) == 3
    grid = to_grid(space)
    assert grid == {"bs": {"grid_search": [16, 32]},
                    "opt": {"grid_search": ["adam", "sgd", "rmsprop"]}, "epochs": 2}
    assert count_grid_points(grid) == 6
    assert sorted(grid_keys(grid)) == ["bs", "opt"]
    assert count_grid_points({"epochs": 2}) == 1


def test_to_grid_rejects_continuous():
    with pytest.raises(SearchSpaceError, match=(
            r"grid search needs discrete values: 'optim_lr' is uniform\(0.001, 0.1\)\. "
            r"Use type: choice or grid_search")):
        to_grid({"optim_lr": {"type": "uniform", "lower": 1e-3, "upper": 0.1}})


def test_describe():
    text = describe({
        "lr": {"type": "loguniform", "lower": 1e-4, "upper": 1e-1},
        "bs": {"type": "choice", "categories": [16, 32]},
        "n": {"type": "qrandint", "lower": 8, "upper": 64, "q": 8},
        "li": {"type": "lograndint", "lower": 1, "upper": 10},
        "u": {"type": "quniform", "lower": 0, "upper": 1, "q": 0.5},
        "z": {"type": "randn", "mean": 1, "sd": 2},
        "g": {"grid_search": [1, 2]},
        "c": 3,
    })
    assert text == {"lr": "loguniform(0.0001, 0.1)", "bs": "choice([16, 32])",
                    "n": "qrandint(8, 64, 8)", "li": "lograndint(1, 10)",
                    "u": "quniform(0, 1, 0.5)", "z": "randn(1, 2)",
                    "g": "grid_search([1, 2])", "c": "constant(3)"}


@pytest.mark.parametrize("entry", [
    {"type": "choice", "categories": [1, "a"]},
    {"type": "uniform", "lower": 0, "upper": 1},
    {"type": "quniform", "lower": 0, "upper": 1, "q": 0.25},
    {"type": "loguniform", "lower": 1e-4, "upper": 1e-1},
    {"type": "qloguniform", "lower": 1e-3, "upper": 1.0, "q": 1e-3},
    {"type": "randint", "lower": 1, "upper": 4},
    {"type": "qrandint", "lower": 8, "upper": 64},
    {"type": "lograndint", "lower": 1, "upper": 1000},
    {"type": "qlograndint", "lower": 2, "upper": 64, "q": 2},
    {"type": "randn", "mean": 1, "sd": 2},
    {"type": "qrandn", "mean": 0, "sd": 2, "q": 0.5},
])
def test_neutral_domains_translate_to_ray_and_back(entry):
    from ray import tune

    from itwinai_ray.backends.ray import translate

    neutral = build_search_space({"k": entry})["k"]
    ray_domain = translate.to_ray(neutral)
    assert translate.to_neutral(ray_domain) == neutral
    kind = entry["type"]
    args = {k: v for k, v in entry.items() if k != "type"}
    expected = getattr(tune, kind)(**args)  # what the YAML type meant before: tune.<type>
    assert translate.to_neutral(expected) == neutral  # same bounds, sampler, q, mean, sd
    assert type(ray_domain) is type(expected)


def test_a_ray_domain_given_in_python_is_read_into_a_neutral_one():
    from ray import tune

    space = build_search_space({"lr": tune.qloguniform(1e-3, 1.0, 1e-3),
                                "f": tune.sample_from(lambda _: 1)})
    assert describe(space) == {"lr": "qloguniform(0.001, 1, 0.001)",
                               "f": "sample_from(<function>)"}
