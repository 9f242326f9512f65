"""Item 2b (informational): where a 2-worker trial's start time goes, phase by phase.

Runs ``RayTorchTrainer`` trials (digits MLP, 2 workers, 1 epoch) with the trial function
replaced in the driver, as ``overhead_vs_raw_ray.py`` does, by one that stamps times (rank 0's
clock, one host) and then runs itwinai_ray's unchanged code:

- ``trial start``: first statement of the trial function;
- ``fit()``: when the Train ``TorchTrainer`` is built, i.e. after the report queue is
  created and the Train run registered (just before ``fit()`` starts the controller);
- ``worker loop``: entry of the per-worker loop on rank 0 (controller up, worker group and
  torch process group started);
- ``execute``: the trainer's lifecycle starts (the worker function fetched from the object
  store and unpickled, the trainer copied and given the trial's values);
- ``first step``: the first training batch reaches ``train_step`` (data loaders, model, DDP).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from benchmarks import overhead_vs_raw_ray as ovr
from benchmarks.suite import common
from benchmarks.suite.common import Measurement

NUM_CPUS = 5
PHASES = ("fit()", "worker loop", "execute", "first step")


class PhaseTrainer(ovr.BenchDigitsTrainer):
    bench_t_build: float = float("nan")
    bench_t_loop: float = float("nan")

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self._t_execute = time.time()
        return super().execute(*args, **kwargs)

    def train_epoch(self) -> Any:
        loss = super().train_epoch()
        self.epoch_metrics["pid"] = float(os.getpid())  # pooled: a warm trial reuses a pid
        self.epoch_metrics.update({"t_build": self.bench_value("bench_t_build"),
                        "t_loop": self.bench_value("bench_t_loop"),
                        "t_execute": float(getattr(self, "_t_execute", float("nan")))})
        return loss


def _phase_train_loop(loop_config: dict[str, Any]) -> None:
    loop_config["config"] = {**loop_config["config"], "bench_t_loop": time.time()}
    from itwinai_ray.backends.ray import trial as _ray_trial  # in the worker: the unpatched module

    return _ray_trial._train_loop(loop_config)


def _phase_trial_fn(config: dict[str, Any], spec: Any) -> None:
    t0 = time.time()
    from itwinai_ray.backends.ray import trial as _ray_trial  # in the trial process

    build = _ray_trial._build_trainer

    def timed_build(cfg: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return build({**cfg, "bench_t_build": time.time()}, *args, **kwargs)

    _ray_trial._build_trainer = timed_build
    _ray_trial._train_loop = _phase_train_loop  # pickled by value into the workers
    return _ray_trial._trial_fn({**config, ovr.T_START_KEY: t0}, spec)


def _pooled_trial_fn(config: dict[str, Any], spec: Any) -> None:
    t0 = time.time()
    from itwinai_ray.backends.ray import trial as _ray_trial  # in the trial process

    return _ray_trial._trial_fn({**config, ovr.T_START_KEY: t0}, spec)


def _hpo(data: Any, lrs: list[float], storage: str, name: str, pooled: bool,
         trial_fn: Any) -> Any:
    """Run the trials with ``trial_fn`` standing in for ``_trial_fn`` in the driver."""
    from itwinai_ray import RayTorchTrainer
    from itwinai_ray.backends.ray import driver as ray_backend

    trainer = PhaseTrainer(config={"batch_size": 32, "optim_lr": 1e-3, "hidden_size": 64},
                           epochs=1, random_seed=0)
    hpo = RayTorchTrainer(
        trainer=trainer, scaling_config={"num_workers": 2},
        tune_config={"num_samples": 1, "metric": "loss", "mode": "min",
                     **({"reuse_actors": True} if pooled else {})},
        run_config=common.quiet_run_config(storage, name),
        search_space={"optim_lr": {"grid_search": lrs}})
    original = ray_backend._trial_fn
    ray_backend._trial_fn = trial_fn
    try:
        *_, results = hpo.execute(*data)
    finally:
        ray_backend._trial_fn = original
    bad = [r for r in results.rows if r.status == "error"]
    if bad:
        raise RuntimeError(f"start_phases: trial {bad[0].trial_id}: {bad[0].error}")
    return results


def _pooled(data: Any, trials: int, storage: str) -> list[Measurement]:
    """The pooled path: trial start -> trainer lifecycle (workers started or reused, process
    group, ``worker_fn`` unpickled) -> first step; a trial on a process that ran one before
    is warm."""
    results = _hpo(data, [1e-3 * (i + 1) for i in range(trials)], storage, "phases-pooled",
                   True, _pooled_trial_fn)
    seen: set[float] = set()
    phases: dict[str, list[list[float]]] = {"cold": [], "warm": []}
    for row in sorted(results.rows, key=lambda r: r.metrics["t_trial_start"]):
        m = row.metrics
        phases["warm" if m["pid"] in seen else "cold"].append(
            [m["t_execute"] - m["t_trial_start"], m["t_first_step"] - m["t_execute"]])
        seen.add(m["pid"])
    out = []
    for kind, rows in phases.items():
        for i, phase in enumerate(("execute", "first step")):
            values = [r[i] for r in rows]
            out.append(Measurement(f"2b start phases (2 workers, pooled, {kind})",
                                   f"-> {phase}", common.median(values), "(informational)",
                                   None, "s", details={"per_trial_s": values}))
    return out


def run(quick: bool) -> list[Measurement]:
    trials = 2 if quick else 4
    common.register_by_value(sys.modules[__name__], sys.modules[ovr.__name__])
    data = common.digits_split()
    lrs = [1e-3 * (i + 1) for i in range(trials)]
    with common.ray_session(NUM_CPUS), common.scratch_dir("phases") as storage:
        results = _hpo(data, lrs, storage, "phases", False, _phase_trial_fn)
        load = common.load1()
    keys = ("t_trial_start", "t_build", "t_loop", "t_execute", "t_first_step")
    per_trial = []
    for row in results.rows:
        m = row.metrics
        if row.status == "error" or any(m.get(k) is None for k in keys):
            raise RuntimeError(f"start_phases: trial {row.trial_id} {row.status} {row.error}")
        per_trial.append([m[b] - m[a] for a, b in zip(keys, keys[1:])])
    out = []
    for i, phase in enumerate(PHASES):
        med = common.median([p[i] for p in per_trial])
        out.append(Measurement("2b start phases (2 workers)", f"-> {phase}", med,
                               "(informational)", None, "s",
                               details={"per_trial_s": [p[i] for p in per_trial],
                                        "load1": load, "trials_at_once": 2}))
    with common.ray_session(NUM_CPUS), common.scratch_dir("phases-pooled") as storage:
        out += _pooled(common.digits_split(), 2 * trials, storage)
    return out
