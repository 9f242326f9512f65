"""DeepSpeed strategy: ZeRO 1/2 under torchrun, and under RayTorchTrainer (bad input:
tests/unit/test_deepspeed.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT, free_port, pooled_options, subprocess_env

from itwinai_ray.distributed.deepspeed import deepspeed_available

needs_deepspeed = pytest.mark.skipif(
    not deepspeed_available() and not os.environ.get("CI"),
    reason='deepspeed not installed: pip install -e ".[deepspeed]"')
WORKER = ROOT / "tests" / "_deepspeed_worker.py"
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
               "MASTER_PORT")
CPU_ADAM = {"optimizer": {"type": "Adam", "params": {"torch_adam": True}}}


# ---- ZeRO 1 and 2 under torchrun, 2 processes ----------------------------------------------
def torchrun(outdir: Path, *args: str, prefix: str = "") -> list[dict[str, Any]]:
    env = {k: v for k, v in subprocess_env().items() if k not in LAUNCH_VARS}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", str(WORKER), str(outdir), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    results = [json.loads(f.read_text()) for f in sorted(outdir.glob(f"{prefix}rank*.json"))]
    errors = [r["error"] for r in results if "error" in r]
    assert proc.returncode == 0 and len(results) == 2 and not errors, (
        f"torchrun failed ({proc.returncode}):\n{errors}\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-3000:]}")
    return results


@needs_deepspeed
@pytest.mark.timeout(330)
@pytest.mark.parametrize("stage", [1, 2])
def test_zero_stage_trains_digits_under_torchrun(stage: int, tmp_path: Path) -> None:
    results = torchrun(tmp_path, str(stage))
    for rank, obs in enumerate(results):
        first, last = obs["history"][0], obs["history"][-1]
        assert first["seen_zero_stage"] == stage and first["seen_world_size"] == 2
        assert first["seen_rank"] == rank
        assert first["seen_micro_batch"] == 32  # the trainer's batch_size
        assert last["val_loss"] < first["val_loss"]
    # metrics are means over ranks: every rank reports the same values
    assert results[0]["history"] == [
        {**h, "seen_rank": 0.0} for h in results[1]["history"]]
    shards = sorted(p.name for p in (tmp_path / "ckpt" / "epoch_2" / "deepspeed" / "state")
                    .iterdir())
    assert sum("optim_states" in s for s in shards) == 2, shards  # one shard per rank
    assert (tmp_path / "ckpt" / "epoch_2" / "model.pt").is_file()
    assert (tmp_path / "ckpt" / "best" / "trainer_state.json").is_file()
    if stage == 2:  # new processes resume from the sharded checkpoint
        resumed = torchrun(tmp_path, str(stage), "resume", prefix="resumed_")
        for obs, before in zip(resumed, results):
            assert obs["start_epoch"] == 2 and len(obs["history"]) == 1
            assert obs["history"][0]["val_loss"] < before["history"][0]["val_loss"]


# ---- RayTorchTrainer: 2 trials x 2 workers, each retried once after a forced failure -------
# tests/e2e/conftest.py's ray_cluster: A local Ray with 5 logical CPUs: two 2-worker trials (2 x 2.01 CPU) run at once.
RAY_CPUS = 5


def reported_history(trial_dir: str) -> list[dict[str, Any]]:
    lines = Path(trial_dir, "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@needs_deepspeed
@pytest.mark.timeout(600)
@pytest.mark.parametrize("pooled", [False, True], ids=["train", "pooled"])
def test_ray_hpo_with_deepspeed_resumes_after_a_failure(ray_cluster, digits_split, pooled: bool,
                                                        tmp_path: Path) -> None:
    from hpo_trainers import FailOnceTrainer

    from itwinai_ray.integrations.ray_trainer import RayTorchTrainer

    strategy = {"name": "deepspeed", "backend": "gloo",
                "config": {"zero_optimization": {"stage": 2}, **CPU_ADAM}}
    trainer = RayTorchTrainer(
        trainer=FailOnceTrainer(epochs=3, strategy=strategy, random_seed=0,
                                config={"batch_size": 32, "hidden_size": 32}),
        scaling_config={"num_workers": 2},
        tune_config={"num_samples": 1, "metric": "val_loss", "mode": "min", **pooled_options(pooled)},
        run_config={"storage_path": str(tmp_path), "name": "ds-hpo", "max_failures": 1},
        search_space={"optim_lr": {"type": "grid_search", "values": [3e-3, 1e-2]}})
    *_, results = trainer.execute(*digits_split)
    assert len(results.rows) == 2
    for row in results.rows:
        assert row.status == "finished", row.traceback
        m = row.metrics
        assert m["epoch"] == 3 and m["world_size"] == 2 and m["seen_world_size"] == 2
        assert m["seen_strategy_is_deepspeed"] == 1.0
        assert m["seen_start_epoch"] == 1, "the retry did not resume from the epoch-1 checkpoint"
        assert m["seen_lr"] == row.config["optim_lr"]  # the sampled lr reached DeepSpeed's Adam
        history = reported_history(row.path)
        assert [h["epoch"] for h in history] == [1, 2, 3]  # attempt 1: epoch 1; retry: 2, 3
        assert history[-1]["val_loss"] < history[0]["val_loss"]
        ckpt = Path(row.checkpoint)
        shards = [p.name for p in (ckpt / "deepspeed" / "state").iterdir()]
        assert sum("optim_states" in s for s in shards) == 2, shards  # both ranks' parts
        assert (ckpt / "model.pt").is_file() and (ckpt / "trainer_state.json").is_file()
