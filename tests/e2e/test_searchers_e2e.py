"""Every searcher run for real (a cheap synthetic trainable through
``ray_backend.run_experiment``, the same code path as RayTorchTrainer's trials).
"""

from __future__ import annotations

import pytest
from ray_objects import build_algorithms  # Ray objects: the tests look inside the searcher

SPACE = {"x": {"type": "uniform", "lower": -4, "upper": 4},
         "y": {"type": "uniform", "lower": -4, "upper": 4}}
WITH_CHOICE = {**SPACE, "bs": {"type": "choice", "categories": [16, 32]}}


def _inner(searcher):
    return getattr(searcher, "searcher", searcher)  # unwrap a ConcurrencyLimiter


# ------------------------------------------------------------------ real runs
RAY_CPUS = 4  # the local Ray of tests/e2e/conftest.py's ray_cluster


def _quadratic_worker(iterations: int):
    def worker(config, ctx):  # local: Ray pickles it by value
        for i in range(iterations):
            loss = (config["x"] - 1.0) ** 2 + (config["y"] + 2.0) ** 2 + 1.0 / (i + 1)
            ctx.report({"loss": loss}, None)
    return worker


def run(tmp_path, search_spec, scheduler_spec=None, space=SPACE, num_samples=4, iterations=2):
    from itwinai_ray.backends.ray import driver as ray_backend

    searcher, param_space, scheduler = build_algorithms(
        search_spec, scheduler_spec, "loss", "min", space, max_t=iterations,
        num_samples=num_samples)
    grid = ray_backend.run_experiment(
        _quadratic_worker(iterations), param_space, num_workers=1, use_gpu=False,
        resources_per_worker=None, metric="loss", mode="min", num_samples=num_samples,
        search_alg=searcher, scheduler=scheduler, storage_path=str(tmp_path),
        name="run", progress=False, mlflow=False)
    assert grid.num_errors == 0, [r.error for r in grid if r.error]
    assert len(grid) == num_samples
    return searcher, grid


def _told(searcher) -> int:
    """How many finished trials the searcher itself has learnt from."""
    inner = _inner(searcher)
    kind = type(inner).__name__
    if kind == "OptunaSearch":
        return sum(t.state.name == "COMPLETE" for t in inner._ot_study.trials)
    if kind == "HyperOptSearch":
        return sum(t["result"].get("status") == "ok" for t in inner._hpopt_trials.trials)
    if kind == "BayesOptSearch":  # the first random_search_steps (10) results are buffered,
        # then registered together: both count as told
        return len(inner.optimizer.res) + len(inner._buffered_trial_results)
    if kind == "NevergradSearch":
        return inner._nevergrad_opt.num_tell
    if kind == "TuneBOHB":  # one observation per result (each at its HyperBand budget)
        return sum(len(v) for v in inner.bohber.configs.values())
    raise AssertionError(kind)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("spec", [
    {"name": "optuna", "seed": 0},
    {"name": "optuna", "sampler": "cmaes", "seed": 0},
    {"name": "optuna", "sampler": "gp", "seed": 0},
    {"name": "hyperopt", "seed": 0},
    {"name": "bayesopt", "seed": 0},
    {"name": "nevergrad", "optimizer": "TwoPointsDE"},
    {"name": "bohb", "seed": 0},
], ids=lambda s: f"{s['name']}-{s.get('sampler', s.get('optimizer', ''))}")
def test_each_searcher_runs_and_learns_from_every_trial(ray_cluster, tmp_path, spec):
    searcher, grid = run(tmp_path, spec)
    if spec["name"] != "bohb":
        assert _told(searcher) == len(grid)
    else:  # BOHB observes a trial only at a HyperBand milestone (a result with a budget)
        assert 1 <= _told(searcher) <= len(grid)
    losses = [r.metrics["loss"] for r in grid]
    assert all(loss >= 0.5 for loss in losses)  # the objective's floor: real reports
