"""Horovod strategy: horovodrun 2 processes, and under RayTorchTrainer (bad input:
tests/unit/test_horovod.py).

Horovod is built by scripts/install_horovod.sh (CI runs it before the tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import ROOT, pooled_options, subprocess_env

from itwinai_ray.distributed.horovod import horovod_available

needs_horovod = pytest.mark.skipif(
    not horovod_available() and not os.environ.get("CI"),
    reason="horovod not installed: run scripts/install_horovod.sh")
WORKER = ROOT / "tests" / "_horovod_worker.py"


# ---- horovodrun --gloo, 2 processes --------------------------------------------------------
@needs_horovod
@pytest.mark.timeout(200)
def test_horovodrun_trains_digits_with_correct_gathered_metrics(tmp_path: Path) -> None:
    horovodrun = str(Path(sys.executable).parent / "horovodrun")
    env = {k: v for k, v in subprocess_env().items()
           if not k.startswith(("HOROVOD_", "MASTER_")) and k not in ("RANK", "WORLD_SIZE")}
    cmd = [horovodrun, "--gloo", "-np", "2", "-H", "localhost:2", sys.executable, str(WORKER),
           str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    results = [json.loads(f.read_text()) for f in sorted(tmp_path.glob("rank*.json"))]
    errors = [r["error"] for r in results if "error" in r]
    assert proc.returncode == 0 and len(results) == 2 and not errors, (
        f"horovodrun failed ({proc.returncode}):\n{errors}\n{proc.stdout[-3000:]}\n"
        f"{proc.stderr[-3000:]}")
    r0, r1 = results
    assert (r0["rank"], r1["rank"]) == (0, 1) and r0["size"] == r1["size"] == 2
    assert r0["is_main"] and not r1["is_main"]
    # The reported val_loss of each epoch is the mean of the two ranks' own losses.
    for epoch, gathered in enumerate(r0["gathered_local_val_loss"]):
        assert len(gathered) == 2 and gathered[0] != gathered[1]
        assert r0["history"][epoch]["val_loss"] == pytest.approx(sum(gathered) / 2)
        assert r1["history"][epoch]["val_loss"] == r0["history"][epoch]["val_loss"]
    assert r0["history"][-1]["val_loss"] < r0["history"][0]["val_loss"]
    assert r0["history"][0]["seen_lr"] == pytest.approx(0.01)  # scale_lr: 0.005 x 2 ranks
    # broadcast initial state + averaged gradients: both ranks end with the same weights
    assert r0["weights_sum"] == pytest.approx(r1["weights_sum"])
    assert r0["allgather_obj"] == r1["allgather_obj"] == [{"rank": 0}, {"rank": 1}]
    assert r0["gather_obj"] == ["r0", "r1"] and r1["gather_obj"] is None
    assert r0["gather_obj_dst1"] is None and r1["gather_obj_dst1"] == [0, 10]
    assert r0["allgather"] == r1["allgather"] == [[0.0, 0.0], [1.0, 10.0]]
    assert r0["reduce_mean"] == r1["reduce_mean"] == 2.0
    assert sorted(r0["shard"] + r1["shard"]) == list(range(10))  # DistributedSampler, hvd ranks
    assert r0["checkpoint_written"]


# ---- RayTorchTrainer: 2 trials x 2 workers, one Horovod group per trial --------------------
# tests/e2e/conftest.py's ray_cluster: A local Ray with 5 logical CPUs: two 2-worker trials (2 x 2.01 CPU) run at once.
RAY_CPUS = 5


@needs_horovod
@pytest.mark.timeout(300)
@pytest.mark.parametrize("pooled", [False, True], ids=["train", "pooled"])
def test_ray_hpo_with_horovod_one_group_per_trial(ray_cluster, digits_split, pooled: bool,
                                                  tmp_path: Path) -> None:
    from hpo_trainers import HorovodSeenTrainer

    from itwinai_ray.integrations.ray_trainer import RayTorchTrainer

    trainer = RayTorchTrainer(
        trainer=HorovodSeenTrainer(epochs=2, strategy="horovod", random_seed=0,
                                   config={"batch_size": 32, "hidden_size": 32}),
        scaling_config={"num_workers": 2},
        tune_config={"num_samples": 1, "metric": "val_loss", "mode": "min", **pooled_options(pooled)},
        run_config={"storage_path": str(tmp_path), "name": "hvd-hpo"},
        search_space={"optim_lr": {"type": "grid_search", "values": [3e-3, 1e-2]}})
    *_, results = trainer.execute(*digits_split)
    assert len(results.rows) == 2
    for row in results.rows:
        assert row.status == "finished", row.traceback
        m = row.metrics
        assert m["epoch"] == 2 and m["world_size"] == 2
        # what Horovod said on both workers: one group of 2 per trial, ranks 0 and 1
        assert m["seen_hvd_size_min"] == m["seen_hvd_size_max"] == 2
        assert m["seen_hvd_ranks_sum"] == 1
        assert m["seen_optimizer_is_hvd"] == 1.0
        assert m["seen_lr"] == pytest.approx(row.config["optim_lr"])
        assert os.path.isfile(os.path.join(row.checkpoint, "model.pt"))
