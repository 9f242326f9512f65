"""Every scheduler by its short name: argument checks, what PBT/PB2 take from the search
space, the one metric a scheduler needs, and a real run of each (a cheap synthetic trainable
through ``ray_backend.run_experiment``, with real checkpoints for PBT and PB2).
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import local_ray

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning.algorithms import SCHEDULERS, build_algorithms, build_scheduler
from itwinai_ray.tuning.search_space import build_search_space

SPACE = {"lr": {"type": "loguniform", "lower": 1.0e-3, "upper": 1.0},
         "bs": {"type": "choice", "categories": [16, 32, 64]},
         "fixed": 3}


# ------------------------------------------------------------------ building (no Ray started)
@pytest.mark.parametrize("name, cls", [
    ("hyperband", "HyperBandScheduler"), ("pbt", "PopulationBasedTraining"), ("pb2", "PB2"),
])
def test_new_schedulers_by_name(name, cls):
    scheduler = build_scheduler(name, "acc", "max", max_t=8,
                                search_space=build_search_space(SPACE))
    assert type(scheduler).__name__ == cls
    assert (scheduler.metric, scheduler._mode) == ("acc", "max")
    assert scheduler._time_attr == "training_iteration"


def test_hyperband_max_t_is_the_epochs_and_checked():
    assert build_scheduler("hyperband", "loss", "min", max_t=6)._max_t_attr == 6
    with pytest.raises(ConfigurationError, match=r"'hyperband': reduction_factor is 1"):
        build_scheduler({"name": "hyperband", "reduction_factor": 1}, "loss", "min", 6)


def test_pbt_mutations_come_from_the_search_space():
    from ray.tune.search.sample import Float

    space = build_search_space(SPACE)
    pbt = build_scheduler("pbt", "loss", "min", max_t=8, search_space=space)
    mutations = pbt._hyperparam_mutations
    assert set(mutations) == {"lr", "bs"}  # not the constant
    assert isinstance(mutations["lr"], Float) and mutations["bs"] == [16, 32, 64]
    assert pbt._perturbation_interval == 2  # a quarter of the epochs
    own = build_scheduler({"name": "pbt", "hyperparam_mutations": {"bs": [8, 16]},
                           "perturbation_interval": 1}, "loss", "min", 8, search_space=space)
    assert own._hyperparam_mutations == {"bs": [8, 16]} and own._perturbation_interval == 1


def test_pb2_bounds_come_from_float_keys():
    pb2 = build_scheduler("pb2", "loss", "min", max_t=4, search_space=build_search_space(SPACE))
    assert pb2._hyperparam_bounds == {"lr": [1.0e-3, 1.0]}
    with pytest.raises(ConfigurationError, match="'pb2' explores continuous values only"):
        build_scheduler("pb2", "loss", "min", 4,
                        search_space=build_search_space({"bs": SPACE["bs"]}))


@pytest.mark.parametrize("spec, match", [
    ({"name": "pbt", "perturbation_interval": 0}, r"perturbation_interval is 0, but must be > 0"),
    ({"name": "pbt", "quantile_fraction": 0.7}, r"quantile_fraction is 0\.7, but must be in"),
    ({"name": "pbt", "resample_probability": 2}, r"resample_probability is 2, but must be in"),
    ({"name": "pbt", "mutations": {}}, r"no argument 'mutations'\. Did you mean "
                                       r"'hyperparam_mutations'\?"),
    ("hyperbnd", r"Unknown scheduler 'hyperbnd'\. Did you mean 'hyperband'\?"),
])
def test_bad_scheduler_specs_name_the_fix(spec, match):
    with pytest.raises(ConfigurationError, match=match):
        build_scheduler(spec, "loss", "min", 8, search_space=build_search_space(SPACE))


def test_pbt_without_anything_to_perturb():
    with pytest.raises(ConfigurationError, match="'pbt' has nothing to perturb"):
        build_scheduler("pbt", "loss", "min", 4, search_space={"fixed": 1})


@pytest.mark.parametrize("scheduler", ["pbt", "pb2"])
def test_population_based_refuse_a_searcher(scheduler):
    with pytest.raises(ConfigurationError, match=rf"The {scheduler} scheduler chooses the "
                                                 r"hyperparameters itself .* 'optuna'"):
        build_algorithms("optuna", scheduler, "loss", "min", SPACE, max_t=4)
    searcher, _, built = build_algorithms(None, scheduler, "loss", "min", SPACE, max_t=4)
    assert searcher is None and built is not None


def test_table_lists_every_scheduler_the_issue_names():
    assert {"fifo", "asha", "median", "hyperband", "bohb", "pbt", "pb2"} <= set(SCHEDULERS)


# ------------------------------------------------------------------ real runs
@pytest.fixture(scope="module")
def ray_cluster():
    with local_ray(num_cpus=4) as ray:
        yield ray


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

    searcher, param_space, scheduler = build_algorithms(
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


@pytest.mark.slow
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


def test_hyperband_warns_when_trials_cannot_all_run_at_once(caplog):
    from itwinai_ray.backends.ray.driver import _warn_if_synchronous

    hyperband = build_scheduler("hyperband", "loss", "min", max_t=4)
    _warn_if_synchronous(hyperband, concurrency=6, num_samples=6)
    _warn_if_synchronous(build_scheduler("asha", "loss", "min", max_t=4), 2, 6)
    assert not caplog.records
    _warn_if_synchronous(hyperband, concurrency=4, num_samples=6)
    assert "only 4 of the 6 trials run at once" in caplog.text and "'asha'" in caplog.text


def _resumes(tmp_path) -> list[dict]:
    path = os.path.join(tmp_path, "resumes.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
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
