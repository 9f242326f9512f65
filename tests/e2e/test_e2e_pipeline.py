"""End to end through the real CLI: both YAML styles, MLflow read back, DDP under torchrun."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from testkit import PYTHON, ROOT, free_port, subprocess_env

TUTORIAL = ROOT / "tutorials" / "00-digits-pipeline"


def run_cli(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "itwinai_ray.cli", *args], cwd=cwd, env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("config", ["pipeline.yaml", "pipeline_hydra.yaml"])
def test_digits_pipeline_runs_through_cli_and_logs_to_mlflow(config, tmp_path) -> None:
    import mlflow

    run_dir = tmp_path / "run"
    proc = run_cli(["exec-pipeline", "--config", str(TUTORIAL / config),
                    "-o", "epochs=3", f"run_dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "checkpoints" / "best" / "model.pt").is_file()

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digits")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["optim_lr"] == "0.003"
    assert run.data.params["epochs"] == "3"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert history[-1].value < history[0].value, "the model learned"
    assert client.get_metric_history(run.info.run_id, "val_accuracy")[-1].value > 0.8


def test_ddp_under_torchrun_gathers_both_ranks(tmp_path) -> None:
    outdir = tmp_path / "ranks"
    run_dir = tmp_path / "run"
    cmd = [PYTHON, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", "-m", "itwinai_ray.cli", "exec-pipeline",
           "--config", str(TUTORIAL / "pipeline.yaml"), "-o", "epochs=2", f"run_dir={run_dir}",
           "-o", "training_pipeline.init_args.steps.2.init_args.strategy="
                 f"{{class_path: recording_strategy.RecordingDDP, init_args: {{outdir: {outdir}}}}}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((outdir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    rec0, rec1 = ranks[0]["records"], ranks[1]["records"]
    assert len(rec0) == len(rec1) > 0
    differs = 0
    for (local0, mean0), (local1, mean1) in zip(rec0, rec1):
        # every rank sees the same value, and it is the mean of both ranks' local values
        assert mean0 == pytest.approx(mean1)
        assert mean0 == pytest.approx((local0 + local1) / 2)
        differs += local0 != local1
    assert differs > 0, "ranks trained on different shards, so their local losses differ"
    # only rank 0 writes the checkpoint
    assert (run_dir / "checkpoints" / "best" / "model.pt").is_file()
