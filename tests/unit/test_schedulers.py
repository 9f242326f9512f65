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


# ------------------------------------------------------------------ HyperBand's end of bracket
class _Trial:
    def __init__(self, name: str, status: str, saving: bool = False) -> None:
        self.name, self.status, self.is_saving = name, status, saving

    def __repr__(self) -> str:
        return self.name


class _Controller:
    def __init__(self) -> None:
        self.stopped: list[_Trial] = []

    def stop_trial(self, trial: _Trial) -> None:
        self.stopped.append(trial)
        trial.status = "TERMINATED"


def _bracket(trials, at: int):
    from ray.tune.schedulers.hyperband import _Bracket

    bracket = _Bracket("training_iteration", max_trials=len(trials), init_t_attr=4,
                       max_t_attr=4, eta=2, s=0)
    for trial in trials:
        bracket.add_trial(trial)
        bracket.update_trial_stats(trial, {"training_iteration": at})
    return bracket


def test_a_trial_paused_as_its_bracket_finished_is_stopped_not_left_paused():
    """Ray's bracket stops only the trials already PAUSED when it finishes; one whose pause
    was still under way (checkpoint being saved) would stay PAUSED forever, and the
    experiment with it (backends/ray/hyperband.py). The fixed scheduler stops it once its
    pause is done, and leaves the trials of an unfinished bracket alone."""
    from ray.tune.schedulers import HyperBandForBOHB, HyperBandScheduler

    from itwinai_ray.backends.ray import hyperband

    scheduler = HyperBandScheduler(metric="acc", mode="max", max_t=4)
    assert hyperband.without_finished_bracket_hang(scheduler) is scheduler
    assert isinstance(scheduler, hyperband.HyperBand)
    bohb = hyperband.without_finished_bracket_hang(HyperBandForBOHB(metric="acc", mode="max"))
    assert isinstance(bohb, hyperband.HyperBandForBOHB)
    paused, pausing = _Trial("paused", "PAUSED"), _Trial("pausing", "RUNNING", saving=True)
    waiting = _Trial("waiting", "PAUSED")
    finished, running = _bracket([paused, pausing], at=4), _bracket([waiting], at=2)
    scheduler._hyperbands = [[finished, running]]
    controller = _Controller()
    assert scheduler.choose_trial_to_run(controller) is None
    assert controller.stopped == [paused]  # the one mid-pause is left to finish its save
    pausing.status, pausing.is_saving = "PAUSED", False
    scheduler.choose_trial_to_run(controller)
    assert controller.stopped == [paused, pausing]
    assert waiting.status == "PAUSED"  # its bracket is still halving: it waits to resume
