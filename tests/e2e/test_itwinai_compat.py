"""itwinai 0.4 drop-in: trainers written in itwinai's style, with only their import lines
changed, run under torchrun (2 processes, gloo) and under RayTorchTrainer (2 trials x 2
workers, real local Ray). Trainers: tests/itwinai_style_trainers.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT, free_port, subprocess_env

WORKER = ROOT / "tests" / "_itwinai_style_worker.py"
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
               "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS")
DS = {"zero_optimization": {"stage": 1},
      "optimizer": {"type": "Adam", "params": {"torch_adam": True}}}


def _records(directory: Path, name: str) -> list[dict[str, Any]]:
    path = directory / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _mlflow_histories(store: Path, experiment: str) -> list[dict[str, list[float]]]:
    """Per run of ``experiment`` in the sqlite store under ``store``: metric -> values."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r} in {store}"
    out = []
    for run in client.search_runs([exp.experiment_id]):
        out.append({key: [m.value for m in client.get_metric_history(run.info.run_id, key)]
                    for key in run.data.metrics})
    return out


# ---------------------------------------------------------------- under torchrun, no Ray
@pytest.fixture(scope="module")
def torchrun_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("itwinai_torchrun")
    env = subprocess_env()
    for key in LAUNCH_VARS:
        env.pop(key, None)
    for which in ("loop", "step", "main", "ds"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={free_port()}", str(WORKER), str(outdir), which]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        errors = [json.loads(f.read_text()).get("error")
                  for f in outdir.glob(f"{which}-rank*.json")]
        assert proc.returncode == 0 and not any(errors), (
            f"torchrun {which} failed ({proc.returncode}):\n{errors}\n{proc.stderr[-3000:]}")
    return outdir


@pytest.mark.timeout(900)
def test_itwinai_style_trainers_under_torchrun(torchrun_out: Path) -> None:
    out = torchrun_out
    # (a) its own train(): both ranks ran it; self.log reached MLflow on rank 0, per epoch
    assert sorted((r["rank"], r["start"]) for r in _records(out, "loop_start")) == [
        (0, 0), (1, 0)]
    [loop_run] = _mlflow_histories(out / "mlflow", "loop")
    assert len(loop_run["train_loss"]) == 2 and len(loop_run["val_loss"]) == 2
    # (b) step hooks: per-batch log and compute_metrics reached MLflow; epoch means reported
    [step_run] = _mlflow_histories(out / "mlflow", "steps")
    assert len(step_run["train_accuracy"]) > 2 and len(step_run["validation_loss"]) > 2
    step = [json.loads((out / f"step-rank{r}.json").read_text()) for r in (0, 1)]
    assert step[0]["history"] == step[1]["history"], "epoch metrics are the means over ranks"
    assert step[0]["history"][-1]["train_accuracy"] > 0.5
    # (c) the rank-0 side effect happened once per epoch, with both ranks' objects
    main = _records(out, "main_worker")
    assert [(r["rank"], r["epoch"]) for r in main] == [(0, 0), (0, 1)]
    assert all(r["gathered"] == [{"rank": 0}, {"rank": 1}] and r["distributed"]
               and r["saved"] for r in main)
    # (d) DeepSpeed without Ray: not the Ray strategy; the micro-batch is the batch size
    ds = _records(out, "deepspeed")
    assert sorted(r["rank"] for r in ds) == [0, 1]
    assert all(not r["ray_deepspeed"] and r["micro_batch"] == 64 for r in ds)


# ---------------------------------------------------------------- under RayTorchTrainer
# tests/e2e/conftest.py's ray_cluster: 5 logical CPUs: two 2-worker trials (2 x 2.01 CPU) at once.
RAY_CPUS = 5


def _tune(cls: type, tmp_path: Path, digits_split: Any, search_space: dict[str, Any],
          **kwargs: Any) -> Any:
    """2 trials (a grid of 2) x 2 workers x 2 epochs, with itwinai's ray_* argument names;
    ``kwargs`` are more trainer arguments (they win over these defaults)."""
    train, val, _ = digits_split
    args = {"ray_scaling_config": {"num_workers": 2},
            "ray_tune_config": {"num_samples": 1},
            "ray_run_config": {"storage_path": str(tmp_path / "ray"), "name": cls.__name__},
            "config": {"batch_size": 64, "optim_lr": 0.01,
                       "record_dir": str(tmp_path / "records")},
            "epochs": 2, "random_seed": 0, "strategy": "ddp", **kwargs}
    trainer = cls(ray_search_space=search_space, **args)
    *_, results = trainer.execute(train, val)
    assert len(results.rows) == 2
    assert all(r.status == "finished" for r in results.rows), [(r.status, r.error)
                                                          for r in results.rows]
    return results


@pytest.mark.timeout(600)
def test_loop_trainer_reports_itself_with_data_and_file(ray_cluster, tmp_path,
                                                         digits_split) -> None:
    """(a): ray_report(checkpoint_data=...) and (checkpoint_file=...) with itwinai's Ray
    objects; each trial fails once in epoch 2 and its retry reads epoch 1's checkpoint back
    through ray.train.get_checkpoint(), as itwinai trainers do. Rank 1 reports epoch 1 3 s
    late, so rank 0 has failed by then: the report round still reaches Tune."""
    import ray.train
    import ray.tune
    from itwinai_style_trainers import LoopTrainer

    results = _tune(
        LoopTrainer, tmp_path, digits_split, {"report_with": {"grid_search": ["data", "file"]}},
        ray_scaling_config=ray.train.ScalingConfig(num_workers=2),
        ray_tune_config=ray.tune.TuneConfig(num_samples=1, scheduler=ray.tune.schedulers.
                                            ASHAScheduler(metric="loss", mode="min", max_t=2,
                                                          grace_period=2)),
        ray_run_config=ray.tune.RunConfig(storage_path=str(tmp_path / "ray"), name="loop",
                                          failure_config=ray.tune.FailureConfig(max_failures=1)),
        config={"batch_size": 64, "optim_lr": 0.01, "report_with": "data", "fail_once": True,
                "slow_first_report_s": 3.0, "record_dir": str(tmp_path / "records")})
    starts = _records(tmp_path / "records", "loop_start")
    for row in results.rows:
        assert row.metrics["training_iteration"] == 2, "one report per epoch, never two"
        assert row.metrics["world_size"] == 2
        files = set(os.listdir(row.checkpoint))
        expected = "ckpt.pt" if row.config["report_with"] == "data" else "my_state.pt"
        assert expected in files, (row.config, files)
        mine = sorted((r["start"], r["rank"]) for r in starts if r["trial"] == row.trial_id)
        assert mine == [(0, 0), (0, 1), (1, 0), (1, 1)], "the retry resumed after epoch 1"


@pytest.mark.timeout(600)
def test_step_trainer_logs_and_metrics_reach_mlflow(ray_cluster, tmp_path,
                                                    digits_split) -> None:
    """(b): per-batch self.log and compute_metrics in every trial; epoch means reported."""
    from itwinai_style_trainers import StepTrainer

    from itwinai_ray.examples.digits import accuracy
    from itwinai_ray.loggers import MLFlowLogger

    results = _tune(StepTrainer, tmp_path, digits_split,
                    {"optim_lr": {"grid_search": [0.01, 0.003]}},
                    metrics={"accuracy": accuracy},
                    logger=MLFlowLogger(savedir=tmp_path / "mlflow", experiment_name="steps",
                                        log_freq="batch"))
    for row in results.rows:
        assert 0.3 < row.metrics["train_accuracy"] <= 1.0 and row.metrics["world_size"] == 2
    runs = [h for h in _mlflow_histories(tmp_path / "mlflow", "steps") if "train_accuracy" in h]
    assert len(runs) == 2, "one MLflow run per trial, from its rank 0"
    assert all(len(h["train_accuracy"]) > 2 and len(h["validation_loss"]) > 2 for h in runs)


@pytest.mark.timeout(600)
def test_main_worker_side_effect_once_per_trial(ray_cluster, tmp_path, digits_split) -> None:
    """(c): `if self.strategy.is_main_worker:` runs on rank 0 only; gather_obj(dst_rank=0)."""
    from itwinai_style_trainers import MainWorkerTrainer

    results = _tune(MainWorkerTrainer, tmp_path, digits_split,
                    {"batch_size": {"grid_search": [32, 64]}})
    records = _records(tmp_path / "records", "main_worker")
    trials = {r.trial_id for r in results.rows}
    assert {r["trial"] for r in records} == trials
    for trial in trials:
        mine = [r for r in records if r["trial"] == trial]
        assert [(r["rank"], r["epoch"]) for r in mine] == [(0, 0), (0, 1)]
        assert all(r["gathered"] == [{"rank": 0}, {"rank": 1}] and r["world"] == 2
                   and r["distributed"] and r["saved"] for r in mine)


@pytest.mark.timeout(600)
def test_deepspeed_under_ray_is_ray_deepspeed_strategy(ray_cluster, tmp_path,
                                                       digits_split) -> None:
    """(d): isinstance(self.strategy, RayDeepSpeedStrategy) and config_params take effect."""
    from itwinai_style_trainers import DeepSpeedAwareTrainer

    results = _tune(DeepSpeedAwareTrainer, tmp_path, digits_split,
                    {"batch_size": {"grid_search": [16, 48]}},
                    strategy={"name": "deepspeed", "config": DS})
    records = _records(tmp_path / "records", "deepspeed")
    assert len(records) == 4  # 2 trials x 2 ranks
    assert all(r["ray_deepspeed"] and r["strategy"] == "RayDeepSpeedStrategy" for r in records)
    by_trial = {row.trial_id: row.config["batch_size"] for row in results.rows}
    assert all(r["micro_batch"] == by_trial[r["trial"]] for r in records)


# ---------------------------------------------------------------- itwinai's YAML, unchanged code
@pytest.mark.timeout(900)
def test_unchanged_itwinai_project_runs_hpo_results_and_best_config(tmp_path) -> None:
    """tests/itwinai_user: modules importing itwinai.* (not installed here) and an itwinai 0.4
    YAML (config: null, ray_* objects, ASHA, strategy: ddp, itwinai.loggers) run as they are;
    `results` reads the experiment and the written best_config.yaml runs."""
    import shutil

    import yaml

    from itwinai_ray.itwinai_compat import real_itwinai_available

    if real_itwinai_available():
        pytest.skip("itwinai is installed: its own classes would run")
    project = tmp_path / "project"
    shutil.copytree(ROOT / "tests" / "itwinai_user", project)
    env = subprocess_env()
    env["PYTHONPATH"] = str(ROOT)  # not tests/: only the project's own modules
    cli = [sys.executable, "-m", "itwinai_ray.cli"]
    more_cpus = "+hpo_training_pipeline.steps.2.ray_init.num_cpus=5"  # 2 x 2.01 CPU at once
    proc = subprocess.run([*cli, "exec-pipeline", "--config", "config.yaml", "--pipe-key",
                           "hpo_training_pipeline", more_cpus], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "import itwinai.torch.trainer: itwinai is not installed" in proc.stderr
    assert "If you meant 'optim_lr', rename it." in proc.stderr  # learning_rate: said once
    experiment = project / "ray_checkpoints" / "Digits-HPO-Experiment"
    results = json.loads((experiment / "results.json").read_text())
    assert len(results["trials"]) == 2
    assert all(t["status"] != "error" for t in results["trials"]), results["trials"]

    proc = subprocess.run([*cli, "results", str(experiment)], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert results["best"]["trial_id"] in proc.stdout

    # --resume of the finished experiment: the same two trials, none run again
    proc = subprocess.run([*cli, "exec-pipeline", "--config", "config.yaml", "--pipe-key",
                           "hpo_training_pipeline", more_cpus, "--resume"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = json.loads((experiment / "results.json").read_text())
    assert sorted(t["trial_id"] for t in resumed["trials"]) == sorted(
        t["trial_id"] for t in results["trials"])

    best_config = experiment / "best_config.yaml"
    step = yaml.safe_load(best_config.read_text())["hpo_training_pipeline"]["steps"][2]
    assert step["config"] == {k: results["best"]["config"][k]
                              for k in ("batch_size", "learning_rate")}
    assert "ray_search_space" not in step and step["ray_tune_config"]["num_samples"] == 1
    proc = subprocess.run([*cli, "exec-pipeline", "--config", str(best_config), "--pipe-key",
                           "hpo_training_pipeline", "hpo_training_pipeline.steps.2.epochs=1"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rerun = json.loads((project / "ray_checkpoints" / "Digits-HPO-Experiment-best"
                        / "results.json").read_text())
    assert [t["status"] for t in rerun["trials"]] == ["finished"]
