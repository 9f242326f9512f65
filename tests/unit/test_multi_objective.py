"""Several metrics at once: ``metric: [val_loss, model_size]``, ``mode: [min, min]``.

Pareto front arithmetic, HPOResults and the Pareto plot without Ray; the errors that name
what to change. A real run: tests/e2e/test_multi_objective_e2e.py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from ray_objects import build_algorithms, build_scheduler, build_searcher

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning.pareto import dominates, pareto_indices, plot_pareto
from itwinai_ray.tuning.results import HPOResults

SPACE = {"x": {"type": "uniform", "lower": 0, "upper": 1}}


# ------------------------------------------------------------------ the front
def test_pareto_indices_min_min_and_min_max():
    pts = [(1, 5), (2, 2), (5, 1), (3, 3), (2, 4), (1, 5)]
    assert pareto_indices(pts, ["min", "min"]) == [0, 1, 2, 5]  # equal points both stay
    assert pareto_indices(pts, ["max", "max"]) == [0, 2, 3, 4, 5]
    assert pareto_indices([(1, 1), (2, 2)], ["min", "max"]) == [0, 1]
    assert dominates((1, 1), (1, 2), ["min", "min"]) and not dominates((1, 1), (1, 1), ["min"] * 2)


def test_missing_or_nan_values_are_never_on_the_front():
    pts = [(None, 0), (float("nan"), 0), (3, 3), ("x", 1)]
    assert pareto_indices(pts, ["min", "min"]) == [2]
    with pytest.raises(ValueError, match="mode is 'low'"):
        pareto_indices(pts, ["low", "min"])


def _grid(points):
    return [SimpleNamespace(metrics={"trial_id": f"t{i}", "loss": a, "size": b,
                                     "training_iteration": 2},
                            config={"x": i}, error=None, path=f"/tmp/t{i}", checkpoint=None)
            for i, (a, b) in enumerate(points)]


def test_hpo_results_report_the_front(tmp_path):
    grid = _grid([(0.5, 100), (0.3, 400), (0.6, 300), (0.2, 900)])
    results = HPOResults.from_result_grid(grid, ["loss", "size"], ["min", "min"], ["x"],
                                          max_epochs=2, experiment_path=str(tmp_path))
    assert (results.metric, results.mode) == ("loss", "min")  # ranking: the first metric
    assert results.objectives == [("loss", "min"), ("size", "min")]
    assert sorted(r.trial_id for r in results.pareto_front()) == ["t0", "t1", "t3"]
    assert results.table()[0] == {"rank": 1, "trial_id": "t3", "x": 3, "loss": 0.2,
                                  "best": 0.2, "best_epoch": 2, "last": 0.2,
                                  "size": 900.0, "epochs": 2, "status": "finished"}
    data = json.loads(results.to_json())
    assert data["objectives"] == [["loss", "min"], ["size", "min"]]
    assert sorted(data["pareto_front"]) == ["t0", "t1", "t3"]
    assert "Pareto front of ['loss', 'size']: 3 trials" in results.summary()
    single = HPOResults.from_result_grid(grid, "loss", "min", ["x"])
    assert single.pareto_front() == [] and "pareto_front" not in json.loads(single.to_json())


def test_plot_pareto_from_results_and_from_results_json(tmp_path):
    grid = _grid([(0.5, 100), (0.3, 400), (0.6, 300), (0.2, 900)])
    results = HPOResults.from_result_grid(grid, ["loss", "size"], ["min", "min"], ["x"])
    png = plot_pareto(results, tmp_path / "front.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    (tmp_path / "results.json").write_text(results.to_json())
    fig = plot_pareto(tmp_path)  # the experiment directory
    ax = fig.axes[0]
    assert ax.get_xlabel() == "loss (min)" and ax.get_ylabel() == "size (min)"
    assert "3 on the Pareto front" in ax.get_title()
    with pytest.raises(ValueError, match="needs two metrics"):
        plot_pareto(HPOResults.from_result_grid(grid, "loss", "min", ["x"]))


# ------------------------------------------------------------------ errors before Ray
def test_several_metrics_need_a_searcher_that_supports_them():
    with pytest.raises(ConfigurationError, match=r"'hyperopt' optimises one metric.*use random, "
                                                 r"grid, optuna"):
        build_searcher("hyperopt", ["loss", "size"], ["min", "min"], SPACE)
    with pytest.raises(ConfigurationError, match=r"sampler 'cmaes' optimises one metric.*nsga2"):
        build_searcher({"name": "optuna", "sampler": "cmaes"}, ["a", "b"], ["min", "min"], SPACE)
    searcher, _ = build_searcher({"name": "optuna", "sampler": "nsga2"}, ["a", "b"], "min", SPACE)
    assert (searcher.metric, searcher.mode) == (["a", "b"], ["min", "min"])  # one mode for all


def test_a_scheduler_needs_its_one_metric_named():
    with pytest.raises(ConfigurationError, match=(
            r"'asha' stops trials on one metric, but tune_config.metric has 2: \['val_loss', "
            r"'model_size'\]\. Name the one .* scheduler: \{name: asha, metric: val_loss\}")):
        build_scheduler("asha", ["val_loss", "model_size"], ["min", "min"], 4)
    asha = build_scheduler({"name": "asha", "metric": "model_size"}, ["val_loss", "model_size"],
                           ["min", "max"], 4)
    assert (asha.metric, asha._mode) == ("model_size", "max")  # its mode from the list
    with pytest.raises(ConfigurationError, match="'other', which is not one of the tuned"):
        build_scheduler({"name": "asha", "metric": "other"}, ["a", "b"], ["min", "min"], 4)
    fifo = build_scheduler(None, ["a", "b"], ["min", "min"], 4)
    assert type(fifo).__name__ == "FIFOScheduler"
    _, _, asha = build_algorithms("optuna", {"name": "asha", "metric": "b"}, ["a", "b"],
                                  ["min", "min"], SPACE, max_t=4)
    assert asha.metric == "b"


@pytest.mark.parametrize("metric, mode, match", [
    (["a", "a"], ["min", "min"], "names a metric twice"),
    (["a", "b"], ["min", "max", "min"], "differ in length"),
    (["a", "b"], ["min", "best"], "mode is 'best'"),
])
def test_bad_objective_lists(metric, mode, match):
    with pytest.raises(ConfigurationError, match=match):
        build_searcher("optuna", metric, mode, SPACE)


@pytest.mark.parametrize("name", ["nsga2", "nsga3"])
def test_genetic_samplers_pickle_as_tune_needs(name: str) -> None:
    """optuna 5.1's GA samplers hold a threading.Lock; Tune pickles the searcher with the
    Tuner and for resume (standard pickle): ours pickle without it and make a new one."""
    import pickle

    import optuna

    from itwinai_ray.tuning.searchers import optuna_sampler

    sampler = optuna_sampler({"name": name, "population_size": 4}, 0, ["a", "b"])
    copy = pickle.loads(pickle.dumps(sampler))
    base = optuna.samplers.NSGAIISampler if name == "nsga2" else optuna.samplers.NSGAIIISampler
    assert isinstance(copy, base) and copy._population_size == 4
