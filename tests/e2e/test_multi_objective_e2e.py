"""Several metrics at once, a real run: RayTorchTrainer on digits with Optuna NSGA-II, ASHA
stopping on val_loss, the front in results.json (the arithmetic and errors:
tests/unit/test_multi_objective.py).
"""

from __future__ import annotations

import json

import pytest

from itwinai_ray.tuning.pareto import dominates, plot_pareto

SPACE = {"x": {"type": "uniform", "lower": 0, "upper": 1}}


# ------------------------------------------------------------------ a real run
RAY_CPUS = 4  # the local Ray of tests/e2e/conftest.py's ray_cluster


@pytest.mark.timeout(300)
def test_nsga2_on_val_loss_and_model_size(ray_cluster, tmp_path, digits_split) -> None:
    from search_trainers import RecordingDigitsTrainer

    from itwinai_ray.integrations.ray_trainer import RayTorchTrainer

    trainer = RayTorchTrainer(
        trainer=RecordingDigitsTrainer(config={"hidden_size": 16, "optim_lr": 3e-3},
                                       epochs=2, random_seed=0),
        scaling_config={"num_workers": 1},
        tune_config={"num_samples": 6, "metric": ["val_loss", "model_size"],
                     "mode": ["min", "min"],
                     "search_alg": {"name": "optuna", "seed": 0,
                                    "sampler": {"name": "nsga2", "population_size": 3}},
                     "scheduler": {"name": "asha", "metric": "val_loss", "grace_period": 1,
                                   "reduction_factor": 2}},
        run_config={"storage_path": str(tmp_path), "name": "mo"},
        search_space={"hidden_size": {"type": "choice", "categories": [2, 8, 32, 128]},
                      "optim_lr": {"type": "loguniform", "lower": 1e-3, "upper": 3e-2}},
    )
    *_, results = trainer.execute(*digits_split)
    assert len(results.rows) == 6 and all(r.status != "error" for r in results.rows)
    assert results.objectives == [("val_loss", "min"), ("model_size", "min")]
    front = results.pareto_front()
    assert front
    points = {r.trial_id: (r.metrics["val_loss"], r.metrics["model_size"]) for r in results.rows}
    on_front = {r.trial_id for r in front}
    for tid, p in points.items():  # every other trial is dominated by one on the front
        if tid not in on_front:
            assert any(dominates(points[f], p, ["min", "min"]) for f in on_front), tid
    from itwinai_ray.examples.digits import make_mlp

    for r in results.rows:  # the model size reported is that of the sampled width
        expected = sum(p.numel() for p in make_mlp(hidden_size=r.config["hidden_size"])
                       .parameters())
        assert r.metrics["model_size"] == expected
    data = json.loads((tmp_path / "mo" / "results.json").read_text())
    assert sorted(data["pareto_front"]) == sorted(on_front)
    assert plot_pareto(tmp_path / "mo", tmp_path / "front.png").is_file()
