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


def run(quick: bool) -> list[Measurement]:
    from itwinai_ray import RayTorchTrainer
    from itwinai_ray.backends.ray import driver as ray_backend

    trials = 2 if quick else 4
    common.register_by_value(sys.modules[__name__], sys.modules[ovr.__name__])
    data = common.digits_split()
    lrs = [1e-3 * (i + 1) for i in range(trials)]
    with common.ray_session(NUM_CPUS), common.scratch_dir("phases") as storage:
        trainer = PhaseTrainer(config={"batch_size": 32, "optim_lr": 1e-3, "hidden_size": 64},
                               epochs=1, random_seed=0)
        hpo = RayTorchTrainer(
            trainer=trainer, scaling_config={"num_workers": 2},
            tune_config={"num_samples": 1, "metric": "loss", "mode": "min"},
            run_config=common.quiet_run_config(storage, "phases"),
            search_space={"optim_lr": {"grid_search": lrs}})
        original = ray_backend._trial_fn
        ray_backend._trial_fn = _phase_trial_fn
        try:
            *_, results = hpo.execute(*data)
        finally:
            ray_backend._trial_fn = original
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
    return out
