"""Adding trials to a finished experiment (`--resume --num-samples N`), on a real local Ray:
the searcher goes on from its saved state, no configuration runs twice, the first trials stay
as they were. The bad inputs of the flag: tests/unit/test_add_trials.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

SPACE = {"lr": {"type": "loguniform", "lower": 1e-4, "upper": 1e-1}}


def tiny_worker(config, ctx):
    for epoch in (1, 2):
        ctx.report({"loss": abs(config["lr"] - 0.01) + 1 / epoch}, None)


RAY_CPUS = 2  # the local Ray of tests/e2e/conftest.py's ray_cluster


def _run(storage: Path, num_samples: int, **kwargs):
    from itwinai_ray.backends.ray import driver as ray_backend
    from itwinai_ray.tuning import algorithms

    # Neutral choices: the driver builds the Ray objects (as for RayTorchTrainer).
    searcher, space, scheduler = algorithms.resolve_algorithms(
        {"name": "optuna", "seed": 0}, None, "loss", "min", SPACE, max_t=2,
        num_samples=num_samples)
    return ray_backend.run_experiment(
        tiny_worker, space, num_workers=1, use_gpu=False, resources_per_worker=None,
        metric="loss", mode="min", num_samples=num_samples, search_alg=searcher,
        scheduler=scheduler, storage_path=str(storage), name="opt", max_iterations=2,
        progress=False, mlflow=False, **kwargs)


def _fingerprints(experiment: Path) -> dict[str, str]:
    return {d.name: hashlib.sha256((d / "result.json").read_bytes()).hexdigest()
            for d in experiment.glob("_trial_fn_*")}


@pytest.mark.timeout(300)
def test_four_more_trials_for_a_finished_optuna_experiment(ray_cluster, tmp_path) -> None:
    first = _run(tmp_path, 4)
    assert len(first) == 4
    before = _fingerprints(tmp_path / "opt")

    grid = _run(tmp_path, 4, resume=True, extend_to=8)
    configs = [r.config["lr"] for r in grid]
    assert len(configs) == 8 and len(set(configs)) == 8  # nothing evaluated twice
    assert all(r.error is None and r.metrics["training_iteration"] == 2 for r in grid)
    after = _fingerprints(tmp_path / "opt")
    assert len(after) == 8
    assert {k: after[k] for k in before} == before  # the first 4 untouched

    # A second resume without a larger N adds nothing.
    assert len(_run(tmp_path, 4, resume=True, extend_to=8)) == 8
