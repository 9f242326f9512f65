"""Item 5: cluster utilisation of 16 trials on the local cluster, and where the rest goes.

``RayTorchTrainer`` runs ``trials`` digits-MLP trials (3 layers of width 1024 quick, 2048
full, so a trial trains for seconds, not milliseconds; fast path: 1 worker per trial,
product defaults: checkpoint every epoch, MLflow on) on a fresh local Ray of ``NUM_CPUS`` =
worker slots (the 2 real cores). An instrumented ``DigitsTrainer`` adds up, per trial, the
time inside ``train_step`` (the training steps), inside ``validation_epoch`` and inside
``write_checkpoint``, and the time from the end of an epoch's checkpoint to the next epoch's
first step (the report to Tune, which copies the checkpoint; the last epoch's is not seen).
The trial start (first statement of the trial function -> first step: process and actor
start, fetching the trainer from the object store, building model and data loaders) is timed
as in ``overhead_vs_raw_ray.py``.

utilisation = sum(step time) / (wall x slots), wall from before ``ray.init`` to the end of
``execute`` (results written). The breakdown divides each part's slot-seconds by the same
denominator. Experiment set-up is ``execute`` start -> first trial start (planning, checks,
MLflow store, Tune start), tear-down is last report -> ``execute`` end; "other" is what no
part explains (Tune's bookkeeping between trials, idle slots while fewer trials than slots
run, the data loader between steps, Python between the timed calls).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks import overhead_vs_raw_ray as ovr
from benchmarks.suite import common
from benchmarks.suite.common import Measurement
from itwinai_ray.examples.digits import DigitsTrainer

NUM_CPUS = 2


class TimedDigitsTrainer(DigitsTrainer):
    """DigitsTrainer that reports cumulative time per phase (``bench_*_s``) with each epoch."""

    bench_t_trial_start: float = float("nan")  # set per trial from the trial values

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bench: dict[str, float] = {}
        self._t_ckpt_end: float | None = None

    def _add(self, key: str, seconds: float) -> None:
        self._bench[key] = self._bench.get(key, 0.0) + seconds

    def train_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        t0 = time.time()
        if "t_first_step" not in self._bench:
            self._bench["t_first_step"] = t0
        if self._t_ckpt_end is not None:  # report of the previous epoch
            self._add("report", t0 - self._t_ckpt_end)
            self._t_ckpt_end = None
        out = super().train_step(batch, batch_idx)
        self._add("step", time.time() - t0)
        return out

    def validation_epoch(self) -> Any:
        t0 = time.time()
        out = super().validation_epoch()
        self._add("val", time.time() - t0)
        return out

    def write_checkpoint(self, directory: Any, epoch: int,
                         metrics: dict[str, float] | None = None) -> Any:
        t0 = time.time()
        out = super().write_checkpoint(directory, epoch, metrics)
        self._t_ckpt_end = time.time()
        self._add("ckpt", self._t_ckpt_end - t0)
        if metrics is not None:  # the dict the reporter sends next
            metrics.update(self._metrics())
        return out

    def train_epoch(self) -> Any:
        loss = super().train_epoch()
        self.epoch_metrics.update(self._metrics())
        return loss

    def _metrics(self) -> dict[str, float]:
        m = {f"bench_{k}_s": v for k, v in self._bench.items() if k != "t_first_step"}
        m["bench_t_first_step"] = self._bench.get("t_first_step", float("nan"))
        m["bench_t_now"] = time.time()  # the last report's value: about the trial's end
        m["bench_t_trial_start"] = float(self.bench_t_trial_start)
        return m


def run(quick: bool) -> list[Measurement]:
    import sys

    from itwinai_ray import RayTorchTrainer
    from itwinai_ray.backends.ray import driver as ray_backend

    trials, epochs, hidden = (8, 3, 1024) if quick else (16, 8, 2048)
    common.register_by_value(sys.modules[__name__], sys.modules[ovr.__name__])
    data = common.digits_split()
    lrs = [float(f"{v:.3g}") for v in torch.logspace(-3.5, -1.5, trials).tolist()]
    with common.scratch_dir("util") as storage:
        t0 = time.time()
        with common.ray_session(NUM_CPUS) as t_init:
            trainer = TimedDigitsTrainer(
                config={"batch_size": 32, "optim_lr": lrs[0], "hidden_size": hidden,
                        "num_layers": 3},
                epochs=epochs, random_seed=0)
            hpo = RayTorchTrainer(
                trainer=trainer, scaling_config={"num_workers": 1},
                tune_config={"num_samples": 1, "metric": "loss", "mode": "min"},
                run_config=common.quiet_run_config(storage, "util"),
                search_space={"optim_lr": {"grid_search": lrs}})
            original = ray_backend._trial_fn
            ray_backend._trial_fn = ovr._timed_trial_fn  # driver only: stamps the trial start
            try:
                t_exec = time.time()
                *_, results = hpo.execute(*data)
                t_done = time.time()
            finally:
                ray_backend._trial_fn = original
            wall = time.time() - t0
            load = common.load1()
    rows = [r.metrics for r in results.rows]
    if any(r.status == "error" for r in results.rows):
        raise RuntimeError("utilisation: a trial failed")

    def total(key: str) -> float:
        return sum(float(m.get(key) or 0.0) for m in rows)

    start = sum(m["bench_t_first_step"] - m["bench_t_trial_start"] for m in rows
                if m.get("bench_t_trial_start") is not None)
    denom = wall * NUM_CPUS
    first_start = min(m["bench_t_trial_start"] for m in rows)
    last_end = max(m["bench_t_now"] for m in rows)
    parts = {"training steps": total("bench_step_s"), "ray.init": t_init * NUM_CPUS,
             "experiment set-up": (first_start - t_exec) * NUM_CPUS,
             "experiment tear-down": (t_done - last_end) * NUM_CPUS,
             "trial start": start, "validation": total("bench_val_s"),
             "checkpoint write": total("bench_ckpt_s"),
             "report to Tune (+ckpt copy)": total("bench_report_s")}
    parts["other"] = denom - sum(parts.values())
    shares = {k: v / denom for k, v in parts.items()}
    util = shares["training steps"]
    details = {"setting": f"{trials} trials x 1 worker x {epochs} epochs (MLP 64-{hidden}-"
                          f"{hidden}-10), {NUM_CPUS} slots", "wall_s": wall,
               "slot_seconds": parts, "shares": shares, "load1": load,
               "per_trial_s": {"training steps": parts["training steps"] / trials,
                               "trial start": start / trials,
                               "checkpoint write": parts["checkpoint write"] / trials}}
    out = [Measurement("5 utilisation", "steps / (wall x slots)", util, ">= 0.8", util >= 0.8,
                       details=details)]
    for key in ("ray.init", "experiment set-up", "trial start", "validation", "checkpoint write",
                "report to Tune (+ckpt copy)", "experiment tear-down", "other"):
        out.append(Measurement("5 utilisation", f"share: {key}", shares[key], "", None))
    return out
