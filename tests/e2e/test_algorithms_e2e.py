"""Optuna with ASHA, built by name, on a real local Ray (building them:
tests/unit/test_algorithms.py).
"""

from __future__ import annotations

import time

from ray_objects import build_scheduler, build_searcher

SPACE = {"x": {"type": "uniform", "lower": -5, "upper": 5},
         "bs": {"type": "choice", "categories": [16, 32]}}


def test_optuna_with_asha_end_to_end(tmp_path):
    import ray
    from ray import tune

    def _quadratic(config):  # local, so Ray pickles it by value (workers cannot import tests)
        for i in range(4):
            tune.report({"loss": (config["x"] - 3.0) ** 2 + 1.0 / (i + 1)})
            time.sleep(0.05)

    searcher, space = build_searcher({"name": "optuna", "seed": 0}, "loss", "min",
                                     {"x": {"type": "uniform", "lower": -10, "upper": 10}})
    scheduler = build_scheduler({"name": "asha", "reduction_factor": 2}, "loss", "min", max_t=4)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        # metric/mode live in the built objects: Tune refuses them twice for a scheduler.
        results = tune.Tuner(
            _quadratic, param_space=space,
            tune_config=tune.TuneConfig(num_samples=6, search_alg=searcher, scheduler=scheduler,
                                        reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(tmp_path), name="e2e", verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    assert results.num_errors == 0 and len(results) == 6
    best = results.get_best_result("loss", "min")
    xs = [r.config["x"] for r in results]
    assert best.config["x"] == min(xs, key=lambda x: abs(x - 3.0))
    assert abs(best.config["x"] - 3.0) < 4.0
    iterations = [r.metrics["training_iteration"] for r in results]
    assert max(iterations) == 4 and min(iterations) < 4, iterations  # ASHA stopped some early
