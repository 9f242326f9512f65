"""Real DDP on gloo under torchrun, 2 processes: topology, collectives, disjoint shards,
synchronized gradients, adopting an existing group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from testkit import TESTS, free_port

LAUNCH_VARS = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE",
    "SLURM_TASKS_PER_NODE", "SLURM_NNODES",
)
WORKER = TESTS / "_strategy_worker.py"


# ---- real multi-process DDP ----------------------------------------------------------------
@pytest.fixture(scope="module")
def torchrun_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", str(WORKER), str(outdir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    files = sorted(outdir.glob("rank*.json"))
    results = [json.loads(f.read_text()) for f in files]
    errors = [r["error"] for r in results if "error" in r]
    assert proc.returncode == 0 and not errors, (
        f"torchrun failed ({proc.returncode}):\n{errors}\n{proc.stdout}\n{proc.stderr}")
    assert len(results) == 2
    return sorted(results, key=lambda r: r["rank"])


def test_ddp_topology_and_object_collectives(torchrun_results: list[dict[str, Any]]) -> None:
    r0, r1 = torchrun_results
    assert [r["rank"] for r in (r0, r1)] == [0, 1] == [r["env_rank"] for r in (r0, r1)]
    for r in (r0, r1):
        assert not r["group_before_init"] and r["owns_group"]
        assert (r["world_size"], r["local_world_size"], r["device"]) == (2, 2, "cpu")
        assert r["allgather_obj"] == [{"rank": 0}, {"rank": 1}]
        assert r["allgather"] == [[0.0, 0.0], [1.0, 10.0]]
        assert r["reduce_mean"] == 2.0
    assert (r0["local_rank"], r1["local_rank"]) == (0, 1)
    assert (r0["is_main"], r1["is_main"]) == (True, False)
    assert (r0["gather_obj"], r1["gather_obj"]) == (["r0", "r1"], None)
    assert (r0["gather_obj_dst1"], r1["gather_obj_dst1"]) == (None, [0, 10])
    assert (r0["gather"], r1["gather"]) == ([[0.0, 0.0], [1.0, 10.0]], None)


def test_ddp_dataloader_shards_are_disjoint(torchrun_results: list[dict[str, Any]]) -> None:
    r0, r1 = torchrun_results
    assert r0["sampler"] == "DistributedSampler"
    for key in ("shard_epoch0", "shard_epoch1"):
        assert len(r0[key]) == len(r1[key]) == 5
        assert sorted(r0[key] + r1[key]) == list(range(10))
    assert r0["shard_epoch0"] != r0["shard_epoch1"]  # set_epoch reshuffles


def test_ddp_gradients_are_synchronized(torchrun_results: list[dict[str, Any]]) -> None:
    r0, r1 = torchrun_results
    for r in (r0, r1):
        assert r["wrapped"] == "DistributedDataParallel" and r["unwrap_is_model"]
        # local grads are 4*(rank+1) per weight; DDP averages them to 6
        assert r["weight_grad"] == pytest.approx([6.0, 6.0, 6.0])
        assert r["bias_grad"] == pytest.approx([4.0])
    assert r0["weight_after_step"] == pytest.approx(r1["weight_after_step"])


def test_ddp_adopts_existing_group_and_cleans_up_own(
    torchrun_results: list[dict[str, Any]],
) -> None:
    for r in torchrun_results:
        assert r["adopted_owns_group"] is False and r["adopted_rank"] == r["rank"]
        assert r["adopted_reduce_mean"] == 0.5
        assert r["group_alive_after_adopter_clean_up"] is True
        assert r["group_alive_after_clean_up"] is False
        assert r["initialized_after_clean_up"] is False
