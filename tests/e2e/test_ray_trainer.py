"""RayTorchTrainer end to end: real local Ray, real DDP (gloo) per trial, real Tune."""

from __future__ import annotations

import os
import time

import pytest
from testkit import ROOT

from itwinai_ray.config import load_pipeline
from itwinai_ray.errors import ResourceError
from itwinai_ray.integrations.ray_trainer import RayTorchTrainer
from itwinai_ray.tuning.results import HPOResults

CONFIG = ROOT / "tests" / "configs" / "hpo_digits.yaml"


# tests/e2e/conftest.py's ray_cluster: A local Ray with 5 logical CPUs: two 2-worker trials (2 x 2.01 CPU) run at once.
RAY_CPUS = 5


@pytest.mark.timeout(600)
def test_same_trainer_plain_then_tuned_with_yaml_only(ray_cluster, tmp_path) -> None:
    # 1. The user's trainer, plainly.
    import torch

    plain_pipe = load_pipeline(CONFIG, "training_pipeline")
    *_, model = plain_pipe.execute()
    history = plain_pipe[-1].history
    assert isinstance(model, torch.nn.Module)
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["seen_world_size"] == 1

    # 2. The same class, wrapped by RayTorchTrainer in YAML: 4 trials x 2 workers, ASHA.
    pipe = load_pipeline(CONFIG, "hpo_pipeline", overrides=[f"storage={tmp_path}"])
    *_, results = pipe.execute()
    assert isinstance(results, HPOResults)
    assert len(results.rows) == 4
    assert all(r.status != "error" for r in results.rows), [r.error for r in results.rows]
    assert any(r.status == "stopped early" for r in results.rows), "ASHA stopped none"
    for row in results.rows:
        m = row.metrics
        assert m["world_size"] == 2 and m["seen_world_size"] == 2
        # what the worker used is what was sampled for this trial
        assert m["seen_lr"] == pytest.approx(row.config["optim_lr"])
        assert m["seen_batch_size"] == row.config["batch_size"]
        assert m["seen_hidden_size"] == 32
    # 5 CPUs hold two trials of 2 x 1 CPU + 0.01: the four trials ran in waves of at most 2
    spans = [(r.metrics["timestamp"] - r.metrics["time_total_s"], r.metrics["timestamp"])
             for r in results.rows]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap <= 2
    best = results.best
    assert best.checkpoint and os.path.isfile(os.path.join(best.checkpoint, "model.pt"))
    assert results.table()[0]["trial_id"] == best.trial_id
    # no placement group of a stopped trial is left behind
    table = ray_cluster.util.placement_group_table()
    alive = [pg for pg in table.values() if pg["state"] in ("CREATED", "PENDING")]
    assert not alive


@pytest.mark.timeout(300)
def test_subclass_mode_with_optuna_and_grid(ray_cluster, tmp_path, digits_split) -> None:
    from hpo_trainers import SubclassedHPOTrainer

    trainer = SubclassedHPOTrainer(
        config={"hidden_size": 16, "optim_lr": 1e-3}, epochs=2, random_seed=0,
        scaling_config={"num_workers": 1},
        tune_config={"num_samples": 2, "search_alg": "optuna", "metric": "val_loss"},
        run_config={"storage_path": str(tmp_path), "name": "optuna"},
        search_space={"optim_lr": {"type": "loguniform", "lower": 1e-4, "upper": 1e-1},
                      "hidden_size": {"type": "choice", "categories": [8, 32]}},
    )
    *_, results = trainer.execute(*digits_split)
    assert len(results.rows) == 2
    best_row = results.table()[0]
    assert results.best_config == {k: best_row[k] for k in ("optim_lr", "hidden_size")}
    assert best_row["val_loss"] == min(r.metric for r in results.rows)
    for row in results.rows:
        assert row.metrics["seen_lr"] == pytest.approx(row.config["optim_lr"])
        assert row.metrics["seen_world_size"] == 1  # fast path: no worker group

    grid = SubclassedHPOTrainer(
        config={"hidden_size": 16, "optim_lr": 1e-3}, epochs=1,
        tune_config={"search_alg": "grid"},
        run_config={"storage_path": str(tmp_path), "name": "grid"},
        search_space={"optim_lr": {"type": "choice", "categories": [1e-4, 1e-2]},
                      "hidden_size": {"type": "grid_search", "values": [8, 32]}},
    )
    *_, grid_results = grid.execute(*digits_split)
    seen = sorted((r.config["optim_lr"], r.config["hidden_size"]) for r in grid_results.rows)
    assert seen == [(1e-4, 8), (1e-4, 32), (1e-2, 8), (1e-2, 32)]
    assert grid_results.best.config == {
        k: grid_results.table()[0][k] for k in ("optim_lr", "hidden_size")}


def test_infeasible_scaling_fails_fast(ray_cluster, tmp_path, digits_split) -> None:
    trainer = RayTorchTrainer(
        trainer=load_pipeline(CONFIG, "training_pipeline")[-1],
        scaling_config={"num_workers": 8},
        run_config={"storage_path": str(tmp_path)},
        search_space={"optim_lr": {"type": "uniform", "lower": 1e-3, "upper": 1e-2}})
    start = time.monotonic()
    with pytest.raises(ResourceError, match=r"needs 8.01 CPU.*cluster has 5"):
        trainer.execute(*digits_split)
    assert time.monotonic() - start < 10


def test_connects_to_the_cluster_named_by_ray_address(ray_cluster, tmp_path) -> None:
    """A driver with RAY_ADDRESS set joins that cluster instead of starting its own."""
    import subprocess
    import sys

    from testkit import subprocess_env

    address = ray_cluster.get_runtime_context().gcs_address
    script = ("from itwinai_ray.backends.ray import driver as rb; import ray; "
              "started = rb.ensure_ray(num_cpus=1); "
              "print(started, ray.cluster_resources()['CPU'])")
    proc = subprocess.run([sys.executable, "-c", script], env=subprocess_env(RAY_ADDRESS=address),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["False", "5.0"]  # joined the 5-CPU cluster


@pytest.mark.timeout(300)
def test_trainer_that_reports_itself_is_not_reported_twice(ray_cluster, tmp_path,
                                                           digits_split) -> None:
    from hpo_trainers import SelfReportingTrainer

    trainer = RayTorchTrainer(
        trainer=SelfReportingTrainer(epochs=3, config={"hidden_size": 8}),
        tune_config={"num_samples": 2},
        run_config={"storage_path": str(tmp_path), "name": "self-report"},
        search_space={"optim_lr": {"type": "grid_search", "values": [1e-3, 1e-2]}})
    *_, results = trainer.execute(*digits_split)
    for row in results.rows:
        assert row.metrics["custom"] == 7.0
        assert row.epochs == 3, "one report per epoch: the framework did not report again"
        assert os.path.isfile(os.path.join(row.checkpoint, "ckpt.pt"))  # itwinai's name
