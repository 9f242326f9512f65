"""End-to-end tests of the Ray backend: real local Ray, real Train V2 workers on gloo."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from itwinai_ray.backends.ray import (
    driver as ray_backend,
)
from itwinai_ray.backends.ray import (
    registry as _ray_callbacks,
)
from itwinai_ray.backends.ray import (
    trial as _ray_trial,
)
from itwinai_ray.backends.ray.driver import WorkerContext, ensure_ray, run_experiment
from itwinai_ray.errors import ResourceError


@pytest.fixture(scope="module")
def ray_cluster():
    """One local 4-CPU Ray for the module, without the dashboard (no PlacementGroupCleaner)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.setenv("OMP_NUM_THREADS", "1")
        started = ensure_ray(num_cpus=4, include_dashboard=False)
        import ray
        import ray.cloudpickle

        # Ray workers cannot import this test module: ship its functions by value.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        assert started
        assert ensure_ray() is False  # already connected: nothing started
        yield ray
        ray.shutdown()


def linear_worker(config: dict[str, Any], ctx: WorkerContext) -> None:
    """Fit y = 3x with SGD; a larger lr converges faster. Each rank writes a checkpoint file."""
    import torch
    import torch.distributed as dist

    started = time.time()
    initialized = dist.is_initialized()
    world = dist.get_world_size() if initialized else 1
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    start_epoch = 0
    if ctx.resume_checkpoint_dir:
        state = torch.load(os.path.join(ctx.resume_checkpoint_dir, f"model_rank{ctx.rank}.pt"))
        model.load_state_dict(state["model"])
        start_epoch = state["epoch"] + 1
    if initialized:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    x = torch.linspace(-1, 1, 32).unsqueeze(1)[ctx.rank::world]
    y = 3 * x
    for epoch in range(start_epoch, config["epochs"]):
        for _ in range(5):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
        marker = config.get("fail_once_marker")
        if marker and epoch >= 1 and not os.path.exists(marker):
            Path(marker).touch()  # fail once, after the first checkpoint was reported
            raise RuntimeError("planned failure in epoch 1")
        with tempfile.TemporaryDirectory() as d:
            module = model.module if initialized else model
            torch.save({"model": module.state_dict(), "epoch": epoch},
                       os.path.join(d, f"model_rank{ctx.rank}.pt"))
            ctx.report({"loss": float(loss), "world_size": world, "dist_init": int(initialized),
                        "worker_pid": os.getpid(), "start_epoch": start_epoch,
                        "t_first_step": started, "t_now": time.time(),
                        "resumed": int(ctx.resume_checkpoint_dir is not None)},
                       checkpoint_dir=d)


def _alive_groups(ray: Any) -> list[str]:
    return [pid for pid, g in ray.util.placement_group_table().items()
            if g["state"] in ("CREATED", "PENDING", "RESCHEDULING")]


def _wait_no_alive_groups(ray: Any, timeout_s: float = 5.0) -> list[str]:
    deadline = time.time() + timeout_s
    while (alive := _alive_groups(ray)) and time.time() < deadline:
        time.sleep(0.5)
    return alive


@pytest.mark.timeout(300)
def test_asha_two_workers_no_leak_and_checkpoints(ray_cluster, tmp_path) -> None:
    """(a)+(e): 3 trials x 2 workers under ASHA; early stops, world size 2, real checkpoints."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    t0 = time.time()
    grid = run_experiment(
        linear_worker, {"lr": tune.grid_search([0.3, 0.01, 0.001])},
        num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1},
        metric="loss", mode="min", num_samples=1,
        scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
        storage_path=str(tmp_path), name="asha", trial_config_base={"epochs": 4})
    assert time.time() - t0 < 280
    assert grid.num_errors == 0, [r.error for r in grid]
    assert len(grid) == 3
    iters = [r.metrics["training_iteration"] for r in grid]
    assert max(iters) == 4 and min(iters) < 4, iters
    for r in grid:
        assert r.metrics["world_size"] == 2 and r.metrics["dist_init"] == 1
    best = grid.get_best_result()
    assert best.config["lr"] == 0.3
    losses = best.metrics_dataframe["loss"].tolist()
    assert losses == sorted(losses, reverse=True)
    # (e) Tune holds the merged checkpoint of both ranks.
    assert best.checkpoint is not None
    assert sorted(os.listdir(best.checkpoint.path)) == ["model_rank0.pt", "model_rank1.pt"]
    assert best.checkpoint.path.startswith(str(tmp_path / "asha"))
    # Tune copied the checkpoints into its trial dirs; the Train run dirs are gone.
    assert "_train_runs" not in best.checkpoint.path
    train_runs = tmp_path / "asha" / "_train_runs"
    assert not train_runs.exists() or os.listdir(train_runs) == []
    # (b) waves: 2 x 2.01 CPU > 4 CPU, so the trials ran one at a time and all finished.
    windows = sorted((r.metrics["t_first_step"], r.metrics["t_now"]) for r in grid)
    overlaps = max(sum(1 for s, e in windows if s <= t < e) for t, _ in windows)
    assert overlaps <= 1, windows
    assert _wait_no_alive_groups(ray_cluster) == []


def test_concurrency_from_capacity_is_passed_to_tune(ray_cluster, tmp_path, monkeypatch) -> None:
    """(b) wiring: Tune gets max_concurrent_trials = capacity / need, a larger user value is
    capped. The real waves (3 trials x 2 workers on 4 CPUs, all finish) run in the ASHA test."""
    import ray.tune

    captured: list[Any] = []

    class FakeTuner:
        def __init__(self, trainable: Any, *, param_space: dict, tune_config: Any,
                     run_config: Any) -> None:
            captured.append((trainable, tune_config, run_config))

        def fit(self) -> str:
            return "grid"

    monkeypatch.setattr(ray.tune, "Tuner", FakeTuner)
    for user_value, expected in ((None, 1), (4, 1)):
        assert run_experiment(
            linear_worker, {"lr": 0.1}, num_workers=2, use_gpu=False,
            resources_per_worker=None, metric="loss", mode="min", num_samples=4,
            max_concurrent_trials=user_value, storage_path=str(tmp_path), name="waves",
        ) == "grid"
        assert captured[-1][1].max_concurrent_trials == expected
    # The fast path holds its worker's CPU in the trial itself: 4 trials of 1 CPU fit at once.
    run_experiment(linear_worker, {"lr": 0.1}, num_workers=1, use_gpu=False,
                   resources_per_worker=None, metric="loss", mode="min", num_samples=4,
                   storage_path=str(tmp_path), name="waves1")
    trainable, tune_config, run_config = captured[-1]
    assert tune_config.max_concurrent_trials == 4
    assert run_config.failure_config.max_failures == 0


def test_infeasible_fails_fast(ray_cluster, tmp_path) -> None:
    """(c): 8 workers on a 4-CPU cluster is refused before any trial starts."""
    t0 = time.time()
    with pytest.raises(ResourceError, match=r"One trial needs 8\.01 CPU \(8 workers x 1 CPU "
                                            r"\+ 0\.01 for the trial driver\) but the cluster "
                                            r"has 4 CPU"):
        run_experiment(linear_worker, {"lr": 0.1}, num_workers=8, use_gpu=False,
                       resources_per_worker=None, metric="loss", mode="min", num_samples=1,
                       storage_path=str(tmp_path), name="infeasible")
    assert time.time() - t0 < 10
    assert not (tmp_path / "infeasible").exists()


@pytest.mark.timeout(120)
def test_fast_path_checkpoints_and_retry_resume(ray_cluster, tmp_path) -> None:
    """(d): num_workers=1 runs in the trial process; checkpoints land on disk; a retried trial
    resumes from Tune's checkpoint."""
    grid = run_experiment(
        linear_worker, {"lr": 0.1}, num_workers=1, use_gpu=False,
        resources_per_worker={"CPU": 1}, metric="loss", mode="min", num_samples=1,
        storage_path=str(tmp_path), name="fast", max_failures=1, checkpoint_num_to_keep=2,
        trial_config_base={"epochs": 3, "fail_once_marker": str(tmp_path / "failed_once")})
    assert grid.num_errors == 0
    result = grid[0]
    m = result.metrics
    assert m["world_size"] == 1 and m["dist_init"] == 0
    assert m["worker_pid"] == m["pid"]  # the trial process itself ran worker_fn
    assert (tmp_path / "failed_once").exists()
    assert m["resumed"] == 1 and m["start_epoch"] == 1  # resumed from epoch 0's checkpoint
    assert result.checkpoint is not None
    assert os.listdir(result.checkpoint.path) == ["model_rank0.pt"]
    kept = [c.path for c, _ in result.best_checkpoints]
    assert 1 <= len(kept) <= 2 and all(os.path.isdir(p) for p in kept)


def sleepy_worker(config: dict[str, Any], ctx: WorkerContext) -> None:
    """Marks that it started, then sleeps in its first epoch: never reports in time."""
    Path(config["marker_dir"], f"started_rank{ctx.rank}").touch()
    time.sleep(config["sleep_s"])
    ctx.report({"loss": 1.0})


@pytest.mark.timeout(180)
def test_no_placement_group_leak_before_first_report(ray_cluster, tmp_path) -> None:
    """Item 1: a 2-worker trial stopped by time_budget_s before any report (no dashboard, so
    no PlacementGroupCleaner) leaves no placement group and gives its CPUs back."""
    markers = tmp_path / "markers"
    markers.mkdir()
    t0 = time.time()
    run_experiment(
        sleepy_worker, {"sleep_s": 300}, num_workers=2, use_gpu=False,
        resources_per_worker={"CPU": 1}, metric="loss", mode="min", num_samples=1,
        storage_path=str(tmp_path), name="budget", time_budget_s=45,
        trial_config_base={"marker_dir": str(markers)})
    assert time.time() - t0 < 150
    # The workers really started (so their placement group existed) before the stop.
    assert sorted(os.listdir(markers)) == ["started_rank0", "started_rank1"]
    assert _wait_no_alive_groups(ray_cluster, timeout_s=10) == []
    deadline = time.time() + 15
    while ray_cluster.available_resources().get("CPU", 0) < 3.9 and time.time() < deadline:
        time.sleep(0.5)
    assert ray_cluster.available_resources().get("CPU", 0) >= 3.9
    train_runs = tmp_path / "budget" / "_train_runs"
    assert not train_runs.exists() or os.listdir(train_runs) == []
    # The registry actor is gone with its experiment.
    assert not [a for a in ray_cluster.util.list_named_actors()
                if a.startswith(_ray_callbacks.REGISTRY_PREFIX)]


def test_trainer_config_failure_limit_and_small_spec(ray_cluster, tmp_path, monkeypatch) -> None:
    """Items 2+3: Train retries a worker group that cannot start only a few times, and the
    worker_fn (with its data) is put once as an ObjectRef, not pickled into every trial's
    train_loop_config."""
    import functools

    import ray.cloudpickle
    import ray.tune

    captured: dict[str, Any] = {}
    real = ray.tune.with_parameters
    monkeypatch.setattr(ray.tune, "with_parameters",
                        lambda fn, **kw: captured.update(kw) or real(fn, **kw))
    big = b"x" * 5_000_000
    worker_fn = functools.partial(sleepy_worker, big)
    ray_backend.make_trainable(
        worker_fn, num_workers=2, use_gpu=False, resources_per_worker=None,
        storage_path=str(tmp_path), name="spec")
    spec = captured["spec"]
    assert isinstance(spec.worker_fn_ref, ray_cluster.ObjectRef)
    assert len(ray.cloudpickle.dumps(spec)) < 100_000
    assert ray_cluster.get(spec.worker_fn_ref).args[0] == big
    trainer = _ray_trial._build_trainer({"lr": 0.1}, spec, "t0", str(tmp_path), None, "run",
                                        reports=None)
    assert len(ray.cloudpickle.dumps(trainer.train_loop_config)) < 100_000
    failure = trainer.run_config.failure_config
    assert failure.max_failures == 0
    assert 0 <= failure.controller_failure_limit <= 3


def test_registry_failures_only_warn(ray_cluster, caplog) -> None:
    """Registry calls never fail the experiment: a missing registry logs a warning."""
    assert _ray_callbacks.registry_call("no_such_registry", None, "pop", "t") is None
    _ray_callbacks.release_all("no_such_registry", None)
    _ray_callbacks.remove_placement_group("00" * 18)
    assert "no_such_registry" in caplog.text
