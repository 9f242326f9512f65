"""The HPO demo config through the real CLI: table, results.json, a best config that runs."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from testkit import PYTHON, ROOT, subprocess_env

HPO = ROOT / "tutorials" / "00-digits-pipeline" / "hpo.yaml"
RAY = "training_pipeline.init_args.steps.2.init_args"


@pytest.mark.timeout(600)
def test_hpo_demo_config_runs_and_writes_a_runnable_best_config(tmp_path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "--config", str(HPO),
         "epochs=2", f"run_dir={run_dir}", f"{RAY}.tune_config.num_samples=3",
         f"{RAY}.scaling_config.num_workers=1", f"{RAY}.ray_init.num_cpus=2"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HPO results, ranked by val_loss" in proc.stdout
    experiment = run_dir / "digits-hpo"
    results = json.loads((experiment / "results.json").read_text())
    assert len(results["trials"]) == 3
    best = results["best"]
    assert results["trials"][0]["trial_id"] == best["trial_id"]

    best_config = experiment / "best_config.yaml"
    cfg = yaml.safe_load(best_config.read_text())
    trainer = cfg["training_pipeline"]["init_args"]["steps"][2]
    assert trainer["class_path"] == "itwinai_ray.examples.digits.DigitsTrainer"
    assert trainer["init_args"]["config"]["optim_lr"] == pytest.approx(best["config"]["optim_lr"])
    assert trainer["init_args"]["config"]["hidden_size"] == best["config"]["hidden_size"]

    rerun = subprocess.run(
        [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "--config", str(best_config),
         "-o", "training_pipeline.init_args.steps.2.init_args.epochs=1"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "epoch 1/1" in rerun.stderr
