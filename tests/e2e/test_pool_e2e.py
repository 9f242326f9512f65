"""The pooled worker-group path (``reuse_actors=True``, ``num_workers=2``) on a real local Ray
and real gloo process groups: what a trial sees is what it sees on the Train path.

Each trial process keeps its workers for the next trial (:mod:`itwinai_ray.backends.ray.pool`);
these tests show the reuse happens (the same worker processes serve several trials) and that
nothing of one trial reaches the next.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from itwinai_ray.backends.ray.driver import WorkerContext, run_experiment

RAY_CPUS = 5  # the local Ray of tests/e2e/conftest.py's ray_cluster: 2 trials x 2.01 CPUs


class ProbeWorker:
    """Fit y = 3x with DDP on the trial's process group, and report what the trial found in
    its worker process when it started: another trial's environment variable, process group,
    random state, or a ``worker_fn`` object already used."""

    def __init__(self) -> None:
        self.calls = 0  # a fresh unpickled object has 0: a reused one would have more

    def __call__(self, config: dict[str, Any], ctx: WorkerContext) -> None:
        import torch
        import torch.distributed as dist

        self.calls += 1
        grouped = dist.is_initialized()  # not on the 1-worker fast path
        seen = torch.__dict__.setdefault("_pool_probe", {})  # this process's memory
        found = {
            "calls": self.calls,
            "leaked_env": int("POOL_PROBE_TRIAL" in os.environ),
            "same_group": int(grouped and dist.group.WORLD is seen.get("group")),
            "same_seed": int(torch.initial_seed() == seen.get("seed")),
            "env_rank": int(os.environ.get("RANK", -1)),
            "env_world": int(os.environ.get("WORLD_SIZE", -1)),
        }
        seen["seed"] = torch.initial_seed()
        os.environ["POOL_PROBE_TRIAL"] = ctx.trial_id  # must not reach the next trial
        world = dist.get_world_size() if grouped else 1
        total = torch.ones(1)
        if grouped:
            dist.all_reduce(total)  # the group really has world_size members
        model, start = _model(ctx)
        ddp = torch.nn.parallel.DistributedDataParallel(model) if grouped else model
        opt = torch.optim.SGD(ddp.parameters(), lr=config["lr"])
        x = torch.linspace(-1, 1, 32).unsqueeze(1)[ctx.rank::world]
        for epoch in range(start, config["epochs"]):
            time.sleep(config.get("epoch_sleep", 0.0))
            for _ in range(5):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(ddp(x), 3 * x)
                loss.backward()
                opt.step()
            _fail_if_planned(config, ctx, epoch)
            with tempfile.TemporaryDirectory() as d:
                torch.save({"model": model.state_dict(), "epoch": epoch},
                           os.path.join(d, f"model_rank{ctx.rank}.pt"))
                ctx.report({"loss": float(loss.detach()), "world_size": world,
                            "members": int(total.item()), "used_lr": opt.param_groups[0]["lr"],
                            "pid": os.getpid(), "start_epoch": start,
                            "resumed": int(ctx.resume_checkpoint_dir is not None),
                            "trial_dir": ctx.trial_dir, **found},
                           checkpoint_dir=d)
        seen["group"] = dist.group.WORLD if grouped else None  # held: a new group of the next trial is another


def _model(ctx: WorkerContext) -> tuple[Any, int]:
    import torch

    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    if not ctx.resume_checkpoint_dir:
        return model, 0
    state = torch.load(os.path.join(ctx.resume_checkpoint_dir, f"model_rank{ctx.rank}.pt"))
    model.load_state_dict(state["model"])
    return model, state["epoch"] + 1


def _fail_if_planned(config: dict[str, Any], ctx: WorkerContext, epoch: int) -> None:
    """``fail``: "always" fails rank 1 in epoch 1 (rank 0 goes on to its report and waits);
    a path fails it once, in epoch 1, after the checkpoint of epoch 0."""
    plan = config.get("fail")
    if not plan or ctx.rank != 1 or epoch < 1:
        return
    if plan != "always":
        if os.path.exists(plan):
            return
        Path(plan).touch()
    raise RuntimeError(f"planned failure of rank 1 in epoch {epoch}")


def _run(tmp_path: Path, name: str, space: dict[str, Any], **options: Any) -> Any:
    base = {"epochs": 3, **options.pop("base", {})}
    options = {"num_workers": 2, "reuse_actors": True, **options}
    return run_experiment(
        ProbeWorker(), space, use_gpu=False, resources_per_worker={"CPU": 1},
        metric="loss", mode="min", num_samples=1, storage_path=str(tmp_path), name=name,
        trial_config_base=base, progress=False, mlflow=False, **options)


def _assert_own_directories(grid: Any, ranks: int) -> None:
    """Every trial, also one run by a reused trial process, wrote to its own directory on
    storage: ctx.trial_dir, its checkpoints and the captured output of each rank."""
    for r in grid:
        assert r.metrics["trial_dir"] == r.path, (r.metrics["trial_dir"], r.path)
        logs = {"trial.log"} if ranks > 1 else set()
        logs |= {f"worker-{rank}.log" for rank in range(ranks)}
        assert logs <= set(os.listdir(r.path)), (r.path, os.listdir(r.path))


def _alive_groups(ray: Any) -> list[str]:
    deadline = time.time() + 10
    while True:
        alive = [pid for pid, g in ray.util.placement_group_table().items()
                 if g["state"] in ("CREATED", "PENDING", "RESCHEDULING")]
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.5)


@pytest.mark.timeout(240)
def test_asha_trials_reuse_workers_and_each_gets_its_own_group(ray_cluster, tmp_path) -> None:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    lrs = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
    grid = _run(tmp_path, "asha", {"lr": tune.grid_search(lrs)}, base={"epochs": 4},
                scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
                capture_output=True)
    assert grid.num_errors == 0, [r.error for r in grid]
    assert len(grid) == len(lrs)
    iters = [r.metrics["training_iteration"] for r in grid]
    assert max(iters) == 4 and min(iters) < 4, iters  # ASHA stopped some early
    for r in grid:
        m = r.metrics
        assert (m["world_size"], m["members"], m["env_world"], m["env_rank"]) == (2, 2, 2, 0)
        assert m["used_lr"] == r.config["lr"]  # the sampled value is the one used
        assert (m["calls"], m["leaked_env"], m["same_group"], m["same_seed"]) == (1, 0, 0, 0), m
    # 2 trial processes at a time, each keeping its workers: fewer worker processes than
    # trials, so trials did run on workers another trial used before.
    pids = [r.metrics["pid"] for r in grid]
    assert len(set(pids)) < len(pids), pids
    _assert_own_directories(grid, ranks=2)
    best = grid.get_best_result()
    assert best.config["lr"] == 0.3
    assert sorted(os.listdir(best.checkpoint.path)) == ["model_rank0.pt", "model_rank1.pt"]
    assert "_train_runs" not in best.checkpoint.path
    runs = tmp_path / "asha" / "_train_runs"
    assert not runs.exists() or os.listdir(runs) == []
    assert _alive_groups(ray_cluster) == []


@pytest.mark.timeout(240)
def test_a_failed_worker_fails_its_trial_and_the_next_trial_gets_new_workers(
        ray_cluster, tmp_path) -> None:
    from ray import tune

    grid = _run(tmp_path, "fail", {"lr": 0.1, "fail": tune.grid_search(["always", ""])},
                max_concurrent_trials=1, fail_fast=False)
    by_plan = {r.config["fail"]: r for r in grid}
    failed, fine = by_plan["always"], by_plan[""]
    assert failed.error is not None and "planned failure of rank 1" in str(failed.error)
    assert failed.metrics["training_iteration"] == 1  # epoch 0 was reported
    assert fine.error is None and fine.metrics["training_iteration"] == 3
    # the failed trial's workers were killed (rank 0 waited in its report): new processes
    assert fine.metrics["pid"] != failed.metrics["pid"]
    assert _alive_groups(ray_cluster) == []


@pytest.mark.timeout(240)
def test_worker_max_failures_restarts_the_workers_from_the_last_checkpoint(
        ray_cluster, tmp_path) -> None:
    marker = tmp_path / "failed-once"
    grid = _run(tmp_path, "restart", {"lr": 0.1, "fail": str(marker)},
                worker_max_failures=1)
    assert marker.exists()
    [r] = list(grid)
    assert r.error is None
    assert r.metrics["training_iteration"] == 3
    assert (r.metrics["resumed"], r.metrics["start_epoch"]) == (1, 1)  # from epoch 0's


@pytest.mark.timeout(240)
def test_resume_continues_an_errored_trial_from_its_checkpoint(ray_cluster, tmp_path) -> None:
    marker = tmp_path / "failed-once"
    first = _run(tmp_path, "resume", {"lr": 0.1, "fail": str(marker)})
    assert first.num_errors == 1
    again = _run(tmp_path, "resume", {"lr": 0.1, "fail": str(marker)}, resume=True)
    [r] = list(again)
    assert r.error is None and r.metrics["training_iteration"] == 3
    assert (r.metrics["resumed"], r.metrics["start_epoch"]) == (1, 1)


@pytest.mark.timeout(240)
def test_a_trial_stopped_between_reports_ends_cleanly(ray_cluster, tmp_path) -> None:
    """The time budget ends the experiment while a trial trains: it stops at its next report,
    as a stopped trial (not an error), and leaves nothing behind. The budget leaves the
    trial's cold start (its workers import torch: 4.5 s idle, 3 times that under load) time
    to report a few epochs first."""
    t0 = time.time()
    grid = _run(tmp_path, "budget", {"lr": 0.1}, base={"epochs": 200, "epoch_sleep": 0.5},
                time_budget_s=20)
    assert time.time() - t0 < 90
    [r] = list(grid)
    assert r.error is None
    assert 1 <= r.metrics["training_iteration"] < 200
    assert _alive_groups(ray_cluster) == []


@pytest.mark.timeout(240)
def test_fast_path_trials_of_a_reused_process_write_to_their_own_directory(
        ray_cluster, tmp_path) -> None:
    """1 worker per trial reuses trial processes by default: a later trial's ctx.trial_dir
    and log file are its own directory on storage (Ray gives a reused process a local
    working directory that it never uploads)."""
    from ray import tune

    grid = _run(tmp_path, "fast", {"lr": tune.grid_search([0.3, 0.1, 0.03, 0.01])},
                num_workers=1, reuse_actors=None, max_concurrent_trials=1,
                capture_output=True, base={"epochs": 1})
    assert grid.num_errors == 0, [r.error for r in grid]
    assert len({r.metrics["pid"] for r in grid}) == 1  # one process served all 4 trials
    _assert_own_directories(grid, ranks=1)


@pytest.mark.timeout(300)
def test_pbt_on_pooled_trials_via_the_yaml_option(ray_cluster, tmp_path, digits_split) -> None:
    """RayTorchTrainer with ``tune_config.reuse_actors: true`` and 2 workers: PBT's exploits
    restore another trial's checkpoint on reused workers, with the new lr in use. Two slots
    for four trials: PBT also pauses the trials that are ahead, so trials move between trial
    processes at every report, and each keeps its whole history (test_pbt's check)."""
    from test_pbt import run_and_check_pbt

    run_and_check_pbt(tmp_path, digits_split, {"num_workers": 2}, {"reuse_actors": True})

