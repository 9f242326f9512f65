"""Item 6: scaling, wall time for 4, 16 and 64 tiny trials at fixed concurrency.

Each trial is one epoch of the digits MLP on 128 samples (no validation, tuned metric
``loss`` = training loss), fast path, product defaults otherwise (checkpoint per epoch, MLflow
on), on one local Ray of ``NUM_CPUS`` (2 trials at once). The wall time is that of
``RayTorchTrainer.execute`` (planning, the Tune run, results), without ``ray.init``.
Linear growth: the cost per extra trial between the middle and the largest size must stay
within 1.25x of that over the whole range (a superlinear cost makes later trials dearer).
The intercept of that line is the fixed cost per experiment (planning, MLflow store, Tune
set-up, results). Ray Tune's published bookkeeping figure
(about 14 trials/s on 16 CPUs for 1-second trials, i.e. ~0.9 trials/s per CPU slot) is the
reference for trials/s per slot.
"""

from __future__ import annotations

import time

from benchmarks.suite import common
from benchmarks.suite.common import Measurement

NUM_CPUS = 2
RAY_PUBLISHED_PER_SLOT = 14 / 16


def _wall(data: object, n: int, storage: str) -> float:
    from itwinai_ray import RayTorchTrainer
    from itwinai_ray.examples.digits import DigitsTrainer

    trainer = DigitsTrainer(config={"batch_size": 32, "optim_lr": 1e-3, "hidden_size": 32},
                            epochs=1, random_seed=0)
    hpo = RayTorchTrainer(
        trainer=trainer, scaling_config={"num_workers": 1},
        tune_config={"num_samples": n, "metric": "loss", "mode": "min"},
        run_config=common.quiet_run_config(storage, f"scale-{n}"),
        search_space={"optim_lr": {"type": "loguniform", "lower": 1e-4, "upper": 1e-2}})
    t0 = time.time()
    *_, results = hpo.execute(data)
    wall = time.time() - t0
    if any(r.status == "error" for r in results.rows):
        raise RuntimeError(f"scaling {n}: a trial failed")
    return wall


def run(quick: bool) -> list[Measurement]:
    import torch

    from itwinai_ray.examples.digits import DigitsGetter

    sizes = (4, 16, 32) if quick else (4, 16, 64)
    full = DigitsGetter().execute()
    data = torch.utils.data.TensorDataset(*(t[:128] for t in full.tensors))
    walls: dict[int, float] = {}
    loads = []
    with common.ray_session(NUM_CPUS), common.scratch_dir("scaling") as storage:
        _wall(data, 2, storage)  # warm-up: first trial processes import torch
        for n in sizes:
            walls[n] = _wall(data, n, storage)
            loads.append(common.load1())
            print(f"  {n} trials: wall {walls[n]:.1f} s, load {loads[-1]}", flush=True)
    a, b, c = sizes
    overall = (walls[c] - walls[a]) / (c - a)  # s per extra trial over the whole range
    last = (walls[c] - walls[b]) / (c - b)  # ... over the upper part only
    growth = last / overall
    fixed = walls[a] - a * overall  # the per-experiment cost (intercept of the line)
    details = {"walls_s": walls, "s_per_trial": {"overall": overall, "upper": last},
               "fixed_s": fixed, "load1": loads,
               "setting": f"tiny trials (1 epoch, 128 samples), {NUM_CPUS} at once"}
    ray_rate = RAY_PUBLISHED_PER_SLOT * NUM_CPUS
    return [
        Measurement("6 scaling", f"s/trial {b}->{c} / {a}->{c}", growth, "<= 1.25 (linear)",
                    growth <= 1.25, details=details),
        Measurement("6 scaling", f"trials/s at {c} (wall)", c / walls[c],
                    f"(Ray: ~{ray_rate:.2f} on {NUM_CPUS} slots)", None),
        Measurement("6 scaling", f"trials/s marginal {a}->{c}", 1 / overall,
                    f"(Ray: ~{ray_rate:.2f} on {NUM_CPUS} slots)", None),
        Measurement("6 scaling", "fixed cost per experiment", fixed, "(informational)", None,
                    "s"),
    ]
