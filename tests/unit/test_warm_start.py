"""Warm start (fast tier: no Ray cluster): an earlier experiment's trials reach the searcher
as already evaluated, checked in Optuna's own study; what does not fit is said in one line."""

from __future__ import annotations

import json
import logging

import pytest

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning.experiment import plan_search
from itwinai_ray.tuning.settings import TuneSettings

SPACE = {"optim_lr": {"type": "loguniform", "lower": 1e-4, "upper": 1e-1},
         "batch_size": {"type": "choice", "categories": [32, 64]}}


def _earlier(tmp_path, trials: list[dict]) -> str:
    """An earlier experiment directory with its results.json (as HPOResults writes it)."""
    rows = [{"rank": i + 1, "trial_id": f"t{i}", **t, "best": t.get("val_loss"),
             "best_epoch": 1, "last": t.get("val_loss"), "epochs": 1, "status": "finished"}
            for i, t in enumerate(trials)]
    (tmp_path / "results.json").write_text(json.dumps(
        {"metric": "val_loss", "mode": "min", "scope": "best", "trials": rows}))
    return str(tmp_path)


def _study(plan):
    from itwinai_ray.backends.ray import algorithms, translate

    built = algorithms.build(plan.searcher, plan.space)  # as the driver builds it
    searcher = getattr(built, "searcher", built)  # inside a ConcurrencyLimiter
    searcher.set_search_properties(plan.metric, plan.mode, translate.param_space(plan.space))
    return searcher._ot_study  # the searcher's own state, not our log


def test_earlier_trials_are_known_to_the_searcher(tmp_path, caplog) -> None:
    earlier = _earlier(tmp_path, [
        {"optim_lr": 0.01, "batch_size": 32, "hidden": 16, "val_loss": 0.3},   # hidden: renamed
        {"optim_lr": 0.5, "batch_size": 64, "hidden": 16, "val_loss": 0.2},    # clipped to 0.1
        {"optim_lr": 0.001, "batch_size": 128, "hidden": 16, "val_loss": 0.1},  # not a category
        {"optim_lr": 0.002, "batch_size": 32, "hidden": 16, "val_loss": None},  # errored
    ])
    tune = TuneSettings.from_any({"num_samples": 4, "metric": "val_loss", "mode": "min",
                                  "search_alg": "optuna", "warm_start": earlier})
    with caplog.at_level(logging.INFO, logger="itwinai_ray.tuning.warm_start"):
        plan = plan_search(dict(SPACE), tune, name="x", max_epochs=2, who="test")
    trials = _study(plan).trials
    assert [(t.params, t.value, t.state.name) for t in trials] == [
        ({"optim_lr": 0.01, "batch_size": 32}, 0.3, "COMPLETE"),
        ({"optim_lr": 0.1, "batch_size": 64}, 0.2, "COMPLETE")]
    lines = [r.getMessage() for r in caplog.records]
    assert "warm start: dropped key(s) ['hidden']: not in the new search space" in lines
    assert "warm start: optim_lr=0.5 clipped to 0.1 (new bounds)" in lines
    assert "warm start: skipped an earlier trial: batch_size=128 is not one of the new " \
           "[32, 64]" in lines
    assert any("starts from 2 earlier trials" in line for line in lines)


def test_a_new_key_skips_the_trials_that_lack_it(tmp_path, caplog) -> None:
    earlier = _earlier(tmp_path, [{"optim_lr": 0.01, "val_loss": 0.3}])
    tune = TuneSettings.from_any({"metric": "val_loss", "mode": "min", "search_alg": "optuna",
                                  "warm_start": earlier})
    with caplog.at_level(logging.WARNING):
        plan = plan_search(dict(SPACE), tune, name="x", max_epochs=2, who="test")
    assert _study(plan).trials == []
    assert "it has no value for the new key 'batch_size'" in caplog.text


@pytest.mark.parametrize(("settings", "message"), [
    ({"search_alg": "random"}, "needs a searcher that learns from earlier results "
                               r"\(optuna or hebo\), but search_alg is 'random'"),
    ({"search_alg": "optuna", "metric": "val_acc", "mode": "max"},
     r"ranked by 'val_loss' \(min\), this one by 'val_acc' \(max\)"),
])
def test_warm_start_that_cannot_work_is_one_clear_error(tmp_path, settings, message) -> None:
    earlier = _earlier(tmp_path, [{"optim_lr": 0.01, "batch_size": 32, "val_loss": 0.3}])
    tune = TuneSettings.from_any({"metric": "val_loss", "mode": "min", **settings,
                                  "warm_start": earlier})
    with pytest.raises(ConfigurationError, match=message):
        plan_search(dict(SPACE), tune, name="x", max_epochs=2, who="test")


def test_a_missing_earlier_experiment_names_what_to_give(tmp_path) -> None:
    tune = TuneSettings.from_any({"search_alg": "optuna", "warm_start": str(tmp_path / "no")})
    with pytest.raises(ConfigurationError, match="does not exist: give an earlier experiment"):
        plan_search(dict(SPACE), tune, name="x", max_epochs=2, who="test")
