"""A real run of each scheduler (a cheap synthetic trainable through
``ray_backend.run_experiment``, with real checkpoints for PBT and PB2) on a local Ray.
"""

from __future__ import annotations

import json
import os

import pytest

from itwinai_ray.tuning.algorithms import resolve_algorithms

SPACE = {"lr": {"type": "loguniform", "lower": 1.0e-3, "upper": 1.0},
         "bs": {"type": "choice", "categories": [16, 32, 64]},
         "fixed": 3}


# ------------------------------------------------------------------ real runs
RAY_CPUS = 4  # the local Ray of tests/e2e/conftest.py's ray_cluster


def stateful_worker(iterations: int, sleep: float = 0.0, record_dir: str = ".",
                    cumulative: bool = True):
    """A trainable with real checkpoints: its state grows by ``lr`` per step (bigger lr,
    better). ``score`` is that state, or with ``cumulative=False`` the ``lr`` itself (so the
    trial with the smallest lr is the worst whatever step each trial is at: PBT compares
    trials at different steps). Each resume is recorded, with the trial that resumed, in
    ``record_dir/resumes.jsonl``."""

    def worker(config, ctx):  # local: Ray pickles it by value
        import json
        import os
        import shutil
        import tempfile
        import time

        state = {"score": 0.0, "step": 0, "owner": ctx.trial_id, "lr": config["lr"]}
        if ctx.resume_checkpoint_dir:
            with open(os.path.join(ctx.resume_checkpoint_dir, "state.json")) as f:
                state = json.load(f)
            with open(os.path.join(record_dir, "resumes.jsonl"), "a") as f:
                f.write(json.dumps({"trial": ctx.trial_id, "from": state["owner"],
                                    "step": state["step"], "lr_in_checkpoint": state["lr"],
                                    "lr": config["lr"]}) + "\n")
        for step in range(state["step"], iterations):
            time.sleep(sleep * (2.0 - config["lr"]))  # better trials report first
            state.update(score=state["score"] + config["lr"], step=step + 1,
                         owner=ctx.trial_id, lr=config["lr"])
            tmp = tempfile.mkdtemp()
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump(state, f)
            score = state["score"] if cumulative else config["lr"]
            ctx.report({"score": score, "loss": -score}, tmp)
            shutil.rmtree(tmp)

    return worker


def run(tmp_path, scheduler_spec, num_samples=4, iterations=4, sleep=0.0, space=None,
        cumulative=True, cpus_per_trial=None):
    from itwinai_ray.backends.ray import driver as ray_backend

    # Neutral choices: the driver builds the Ray objects (as for RayTorchTrainer).
    searcher, param_space, scheduler = resolve_algorithms(
        None, scheduler_spec, "score", "max",
        space or {"lr": {"type": "uniform", "lower": 0.01, "upper": 1.0}}, max_t=iterations)
    grid = ray_backend.run_experiment(
        stateful_worker(iterations, sleep, str(tmp_path), cumulative), param_space,
        num_workers=1, use_gpu=False,
        resources_per_worker=cpus_per_trial and {"CPU": cpus_per_trial}, metric="score", mode="max", num_samples=num_samples,
        search_alg=searcher, scheduler=scheduler, storage_path=str(tmp_path), name="run",
        progress=False, mlflow=False)
    assert grid.num_errors == 0, [r.error for r in grid if r.error]
    trials = num_samples * len(space["lr"]["values"]) if space else num_samples
    assert len(grid) == trials
    return grid


@pytest.mark.timeout(240)
@pytest.mark.parametrize("spec", [
    {"name": "hyperband", "reduction_factor": 2},
    {"name": "asha", "reduction_factor": 2},
    {"name": "median", "min_samples_required": 1},
])
def test_early_stopping_schedulers_stop_the_worst(ray_cluster, tmp_path, spec):
    # HyperBand (max_t 4, rf 2) fills bracket s=0 with 3 trials (run to max_t, no halving),
    # then s=1 with 3 trials halved together at iteration 2: all 6 must run at once (half a
    # CPU each here), else a late trial joins a bracket already halved (run_experiment warns).
    hyperband = spec["name"] == "hyperband"
    # Spread values, best first, not random ones: trials start one after the other, and a
    # worse trial that starts (so reports) first is not compared with anything yet.
    lrs = [1.0, 0.85, 0.7, 0.55, 0.4, 0.25] if hyperband else [1.0, 0.7, 0.4, 0.1]
    grid = run(tmp_path, spec, num_samples=1, iterations=4, sleep=0.1,
               space={"lr": {"type": "grid_search", "values": lrs}},
               cpus_per_trial=0.5 if hyperband else None)
    iters = {r.config["lr"]: r.metrics["training_iteration"] for r in grid}
    assert max(iters.values()) == 4
    assert min(iters.values()) < 4, iters  # some trial was stopped (or never resumed) early
    best = max(iters)
    assert iters[best] == 4  # never the best one
    if hyperband:
        assert sorted(iters.values()) == [2, 4, 4, 4, 4, 4], iters


def _resumes(tmp_path) -> list[dict]:
    path = os.path.join(tmp_path, "resumes.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", ["pbt", "pb2"])
def test_population_based_training_exploits_real_checkpoints(ray_cluster, tmp_path, name):
    spec = {"name": name, "perturbation_interval": 1, "quantile_fraction": 0.25}
    if name == "pbt":
        spec["resample_probability"] = 0.0  # perturb only: x0.8 or x1.2, clipped to the bounds
    grid = run(tmp_path, spec, num_samples=4, iterations=6, sleep=0.3, cumulative=False)
    resumes = _resumes(tmp_path)
    exploits = [e for e in resumes if e["from"] != e["trial"]]
    assert exploits, f"no exploit: {resumes}"
    for e in exploits:
        assert e["step"] >= 1  # resumed mid-training from the other trial's checkpoint
        assert 0.01 - 1e-6 <= e["lr"] <= 1.0 + 1e-6  # inside the bounds (PB2 rounds to float32)
        if name == "pbt":  # PB2's GP picks any value in the bounds, maybe the same one again
            perturbed = [min(max(e["lr_in_checkpoint"] * f, 0.01), 1.0) for f in (0.8, 1.2)]
            assert e["lr"] == pytest.approx(perturbed[0]) or \
                e["lr"] == pytest.approx(perturbed[1]), (e, perturbed)
    assert all(0.01 - 1e-6 <= r.config["lr"] <= 1.0 + 1e-6 for r in grid)  # final configs too
