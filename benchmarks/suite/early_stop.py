"""Item 3: early-stopping efficiency, ASHA and the median stopping rule against FIFO.

For each seed, ``configs`` learning rates are sampled log-uniformly (1e-4 .. 3e-1, numpy seed)
and the *same* list is run under FIFO, ASHA and the median stopping rule (``grid_search`` over
it, so the searcher adds no randomness), through ``RayTorchTrainer`` on the digits MLP
(``DigitsTrainer``, trainer seed = the seed), fast path (1 worker per trial), tuned metric
``loss`` (validation loss), product defaults otherwise (checkpoint every epoch, MLflow on).
Measured per scheduler, summed / averaged over seeds: total epochs trained (Tune's
``training_iteration`` of each trial's last result), the wall time of ``execute``, and the best
final validation accuracy over the trials.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.suite import common
from benchmarks.suite.common import Measurement

NUM_CPUS = 2  # the real cores: 2 trials at once
SCHEDULERS = ("fifo", "asha", "median")


def _sample_lrs(seed: int, n: int) -> list[float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [float(f"{v:.4g}") for v in np.exp(rng.uniform(np.log(1e-4), np.log(3e-1), n))]


def _one(data: Any, lrs: list[float], scheduler: str, seed: int, epochs: int,
         storage: str) -> dict[str, Any]:
    import time

    from itwinai_ray import RayTorchTrainer
    from itwinai_ray.examples.digits import DigitsTrainer

    trainer = DigitsTrainer(config={"batch_size": 32, "optim_lr": lrs[0], "hidden_size": 64},
                            epochs=epochs, random_seed=seed)
    hpo = RayTorchTrainer(
        trainer=trainer, scaling_config={"num_workers": 1},
        tune_config={"num_samples": 1, "metric": "loss", "mode": "min",
                     "scheduler": scheduler},
        run_config=common.quiet_run_config(storage, f"{scheduler}-s{seed}"),
        search_space={"optim_lr": {"grid_search": lrs}})
    t0 = time.time()
    *_, results = hpo.execute(*data)
    wall = time.time() - t0
    errors = [r.error for r in results.rows if r.status == "error"]
    if errors:
        raise RuntimeError(f"{scheduler} seed {seed}: {len(errors)} trial(s) failed: {errors[0]}")
    accs = [r.metrics.get("val_accuracy") for r in results.rows]
    return {"epochs": sum(r.epochs for r in results.rows), "wall_s": wall,
            "best_val_accuracy": max(a for a in accs if a is not None),
            "stopped_early": sum(r.status == "stopped early" for r in results.rows),
            "load1": common.load1()}


def run(quick: bool) -> list[Measurement]:
    configs, epochs, seeds = (8, 8, (0,)) if quick else (16, 20, (0, 1, 2))
    data = common.digits_split()
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SCHEDULERS}
    with common.ray_session(NUM_CPUS), common.scratch_dir("early-stop") as storage:
        for seed in seeds:
            lrs = _sample_lrs(seed, configs)
            for scheduler in SCHEDULERS:
                r = _one(data, lrs, scheduler, seed, epochs, storage)
                runs[scheduler].append(r)
                print(f"  seed {seed} {scheduler}: {r['epochs']} epochs, wall {r['wall_s']:.1f} s,"
                      f" best val acc {r['best_val_accuracy']:.4f}, load {r['load1']}",
                      flush=True)
    fifo_epochs = sum(r["epochs"] for r in runs["fifo"])
    fifo_wall = sum(r["wall_s"] for r in runs["fifo"])
    setting = (f"{configs} configs x {epochs} epochs max, seeds {list(seeds)}, "
               f"{NUM_CPUS} trials at once")
    out = []
    for scheduler in ("asha", "median"):
        rs = runs[scheduler]
        frac = sum(r["epochs"] for r in rs) / fifo_epochs
        gap = statistics.fmean(100 * (f["best_val_accuracy"] - r["best_val_accuracy"])
                               for f, r in zip(runs["fifo"], rs))
        wall = sum(r["wall_s"] for r in rs) / fifo_wall
        details = {"setting": setting, "runs": rs, "fifo_runs": runs["fifo"]}
        out.append(Measurement(f"3 early stop {scheduler}", "epochs / FIFO's", frac, "<= 0.35",
                               frac <= 0.35, details=details))
        out.append(Measurement(f"3 early stop {scheduler}", "best val acc gap to FIFO", gap,
                               "<= 1 point", gap <= 1.0, "points"))
        out.append(Measurement(f"3 early stop {scheduler}", "wall / FIFO's", wall,
                               "(informational)", None))
    return out
