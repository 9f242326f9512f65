"""HPO overhead of RayTorchTrainer against a hand-written Ray Tune + Train V2 script.

Both paths run the same grid of trials in this process, on one shared local Ray
(``ray.init(address="local", num_cpus=N, include_dashboard=False)``):

* **ours**: ``RayTorchTrainer(trainer=BenchDigitsTrainer(...), ...)``, FIFO, ``grid_search``
  over the learning rates, ``max_concurrent_trials`` derived by itwinai_ray from the capacity.
* **raw**: what a competent Ray user writes for the same work: a Tune function trainable
  (``tune.with_resources(..., {"cpu": 0.01})``, ``max_concurrent_trials`` set by hand to the
  same value as ours) that builds ``ray.train.torch.TorchTrainer(train_loop_per_worker, ...)``
  with ``RunConfig(callbacks=[TuneReportCallback()])`` and calls ``.fit()``. The loop uses
  ``prepare_model`` / ``prepare_data_loader`` and reports the epoch metrics and a checkpoint
  (rank 0 writes ``model.pt`` into a temp dir) every epoch.

Same work in both: digits MLP (``make_mlp``, 64 -> hidden -> 10), the split of
``DataSplitter(0.6, 0.2, rnd_seed=1)``, seed 0 on every rank, shuffled training data
(``DistributedSampler(seed=0)`` with more than one worker), the same batch size, epochs and
Adam learning rates, validation every epoch (loss and accuracy averaged over ranks), training
accuracy per batch (``DigitsTrainer`` tracks it by default), one checkpoint per epoch.
The final validation losses of the two paths are printed side by side as a sanity check.

What is timed (``time.time()``, one host, one clock):

* **wall**: the whole HPO call: ``RayTorchTrainer.execute(...)`` for ours (planning,
  ``Tuner.fit`` and building HPOResults), ``Tuner(...).fit()`` plus ``get_best_result`` for raw.
* **start -> first step** (mean over trials): ``t_first_step - t_trial_start``, both reported
  by rank 0 as metrics.
  ``t_trial_start`` is the first statement of the Tune function trainable in both paths. For
  raw this is the user's trainable. For ours the trainable is itwinai_ray's private
  ``ray_backend._trial_fn``; during ours' run the benchmark replaces it, in the driver only, by
  ``_timed_trial_fn``, which records the time and calls the unchanged ``_trial_fn`` inside the
  trial process. The time reaches the workers as an extra trial value
  (``bench_t_trial_start``), which the trainer keeps as an attribute.
  ``t_first_step`` is taken when the first training batch reaches the step (ours: at the
  top of the first ``train_step``; raw: at the top of the first loop body).
* **first result** (mean over trials): Tune's own ``time_this_iter_s`` of iteration 1, i.e.
  trial start -> first epoch result received by the trial (training, validation,
  checkpoint and forwarding to Tune included). Needs no instrumentation.
* **trial time** (mean): Tune's ``time_total_s`` of the last result.

Runs are repeated ``--repeats`` times in ABBA order (ours, raw, raw, ours, ...), so the order
and warm-up effects cancel out on average.

    python benchmarks/overhead_vs_raw_ray.py [--trials 4] [--workers 2] [--epochs 3]
        [--num-cpus 5] [--repeats 2] [--batch-size 32] [--hidden 64]
    python benchmarks/overhead_vs_raw_ray.py --trials 8 --workers 2 --epochs 5   # issue's setting
    python benchmarks/overhead_vs_raw_ray.py --workers 1   # ours' fast path vs a group of 1
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch

from itwinai_ray.examples.digits import DigitsGetter, DigitsTrainer, accuracy, make_mlp

SEED = 0
SPLIT_SEED = 1
TRIAL_OVERHEAD_CPU = 0.01
T_START_KEY = "bench_t_trial_start"


# ----------------------------------------------------------------------------------------
# ours
# ----------------------------------------------------------------------------------------
class BenchDigitsTrainer(DigitsTrainer):
    """DigitsTrainer that reports when its first training step started (rank 0's clock)."""

    bench_t_trial_start: float = float("nan")  # set per trial from the trial values

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._t_first_step: float | None = None

    def train_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        if self._t_first_step is None:
            self._t_first_step = time.time()
        return super().train_step(batch, batch_idx)

    def train_epoch(self) -> Any:
        loss = super().train_epoch()  # averaged over ranks
        metrics = self.epoch_metrics
        metrics["t_first_step"] = float(self._t_first_step or float("nan"))  # this rank's
        metrics["t_trial_start"] = self.bench_value(T_START_KEY)
        return loss

    def bench_value(self, key: str) -> float:
        """A time stamp given as a trial value: a key the constructor does not take goes into
        the config (as itwinai does), not onto the attribute of the same name."""
        value = self.config.model_dump().get(key)
        return float(getattr(self, key) if value is None else value)


def _timed_trial_fn(config: dict[str, Any], spec: Any) -> None:
    """Stands in for ``ray_backend._trial_fn`` (driver-side patch): timestamp, then the original."""
    t0 = time.time()
    from itwinai_ray.backends.ray import (
        driver as ray_backend,  # in the trial process: the unpatched module
    )

    return ray_backend._trial_fn({**config, T_START_KEY: t0}, spec)


def run_ours(data: tuple[Any, Any], lrs: list[float], args: argparse.Namespace,
             storage: str, name: str, mlflow: bool = True, reuse_actors: bool = False,
             ) -> tuple[float, list[dict[str, Any]], int]:
    """Ours, as a user runs it: MLflow tracking on (the default) unless ``mlflow=False``;
    ``reuse_actors``: the pooled path (trial processes keep their workers)."""
    from itwinai_ray import RayTorchTrainer
    from itwinai_ray.backends.ray import driver as ray_backend
    from itwinai_ray.tuning import resources

    trainer = BenchDigitsTrainer(
        config={"batch_size": args.batch_size, "optim_lr": lrs[0], "hidden_size": args.hidden},
        epochs=args.epochs, random_seed=SEED)
    hpo = RayTorchTrainer(
        trainer=trainer,
        scaling_config={"num_workers": args.workers,
                        **({"use_gpu": True} if getattr(args, "use_gpu", False) else {})},
        tune_config={"num_samples": 1, "metric": "loss", "mode": "min", "scheduler": "fifo",
                     **({"reuse_actors": True} if reuse_actors else {})},
        run_config={"storage_path": storage, "name": name, "mlflow": mlflow},
        search_space={"optim_lr": {"grid_search": lrs}},
    )
    need = resources.trial_need(args.workers, None, False)
    concurrency = resources.max_concurrent_trials(need, ray_backend.cluster_capacity())
    original = ray_backend._trial_fn
    ray_backend._trial_fn = _timed_trial_fn  # driver only; see the module docstring
    try:
        t0 = time.time()
        *_, results = hpo.execute(*data)
        wall = time.time() - t0
    finally:
        ray_backend._trial_fn = original
    rows = []
    for row in results.rows:
        first = _first_result(row.path)
        rows.append({"lr": row.config["optim_lr"], "status": row.status,
                     "loss": row.metrics.get("loss"),
                     "t_trial_start": row.metrics.get("t_trial_start"),
                     "t_first_step": row.metrics.get("t_first_step"),
                     "first_result_s": first.get("time_this_iter_s"),
                     "time_total_s": row.metrics.get("time_total_s"), "path": row.path})
    return wall, rows, concurrency


def _first_result(trial_dir: str | None) -> dict[str, Any]:
    """Iteration 1 of a trial, from its result.json."""
    import json

    if not trial_dir:
        return {}
    try:
        with open(os.path.join(trial_dir, "result.json")) as fh:
            return json.loads(fh.readline())
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------------------------------
# raw Ray Tune + Train V2
# ----------------------------------------------------------------------------------------
def raw_train_loop(cfg: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    train_ds, val_ds = cfg["data"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    train_loader = ray.train.torch.prepare_data_loader(
        torch.utils.data.DataLoader(train_ds, batch_size=cfg["batch_size"], shuffle=True))
    val_loader = ray.train.torch.prepare_data_loader(
        torch.utils.data.DataLoader(val_ds, batch_size=cfg["batch_size"], shuffle=False))
    model = ray.train.torch.prepare_model(make_mlp(hidden_size=cfg["hidden"]))
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    t_first_step = None
    for epoch in range(cfg["epochs"]):
        if world > 1:
            train_loader.sampler.set_epoch(epoch)
        model.train()
        t_loss = t_acc = 0.0
        n_train = 0
        for x, y in train_loader:
            if t_first_step is None:
                t_first_step = time.time()
            opt.zero_grad(set_to_none=True)
            pred = model(x)
            loss = loss_fn(pred, y)
            loss.backward()
            opt.step()
            t_loss += float(loss)
            t_acc += accuracy(pred.detach(), y)
            n_train += 1
        model.eval()
        v_loss = v_acc = 0.0
        n_val = 0
        with torch.no_grad():
            for x, y in val_loader:
                pred = model(x)
                v_loss += float(loss_fn(pred, y))
                v_acc += accuracy(pred, y)
                n_val += 1
        sums = torch.tensor([t_loss / n_train, t_acc / n_train, v_loss / n_val, v_acc / n_val],
                            dtype=torch.float64, device=ray.train.torch.get_device())
        if world > 1:
            dist.all_reduce(sums)
        t_loss, t_acc, v_loss, v_acc = (sums / world).tolist()
        metrics = {"train_loss": t_loss, "train_accuracy": t_acc, "val_loss": v_loss,
                   "val_accuracy": v_acc, "loss": v_loss, "epoch": epoch + 1,
                   "t_first_step": t_first_step, "t_trial_start": cfg["t_trial_start"]}
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                torch.save(model.module.state_dict() if world > 1 else model.state_dict(),
                           os.path.join(tmp, "model.pt"))
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)


def raw_trainable(config: dict[str, Any], data: Any, settings: dict[str, Any]) -> None:
    t_trial_start = time.time()
    import ray.train
    import ray.tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = ray.tune.get_context().get_trial_id()
    trainer = TorchTrainer(
        raw_train_loop,
        train_loop_config={**settings, "lr": config["lr"], "data": data,
                           "t_trial_start": t_trial_start},
        scaling_config=ray.train.ScalingConfig(num_workers=settings["workers"],
                                               use_gpu=settings.get("use_gpu", False)),
        run_config=ray.train.RunConfig(
            name=f"{trial_id}_{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=settings["train_storage"],
            callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def run_raw(data: tuple[Any, Any], lrs: list[float], args: argparse.Namespace,
            storage: str, name: str, concurrency: int) -> tuple[float, list[dict[str, Any]]]:
    from ray import tune

    settings = {"workers": args.workers, "use_gpu": getattr(args, "use_gpu", False),
                "epochs": args.epochs, "batch_size": args.batch_size,
                "hidden": args.hidden, "train_storage": os.path.join(storage, name, "_train")}
    t0 = time.time()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(raw_trainable, data=data, settings=settings),
                            {"cpu": TRIAL_OVERHEAD_CPU}),
        param_space={"lr": tune.grid_search(lrs)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=1,
                                    max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(name=name, storage_path=storage),
    )
    grid = tuner.fit()
    grid.get_best_result()
    wall = time.time() - t0
    rows = []
    for result in grid:
        m = result.metrics or {}
        first = _first_result(result.path)
        rows.append({"lr": result.config["lr"], "status": "error" if result.error else "ok",
                     "loss": m.get("loss"), "t_trial_start": m.get("t_trial_start"),
                     "t_first_step": m.get("t_first_step"),
                     "first_result_s": first.get("time_this_iter_s"),
                     "time_total_s": m.get("time_total_s"), "path": result.path})
    return wall, rows


# ----------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------
def _mean(values: list[Any]) -> float:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.fmean(vals) if vals else float("nan")


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "first_step": _mean([r["t_first_step"] - r["t_trial_start"] for r in rows
                             if r["t_first_step"] is not None and r["t_trial_start"] is not None]),
        "first_result": _mean([r["first_result_s"] for r in rows]),
        "trial": _mean([r["time_total_s"] for r in rows]),
        "errors": sum(r["status"] == "error" for r in rows),
    }


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--num-cpus", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2,
                        help="pairs of runs, in ABBA order (default 2: ours raw raw ours)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--storage", default=None, help="results dir (default: a temp dir)")
    args = parser.parse_args()

    import ray
    import ray.cloudpickle

    from itwinai_ray.components import DataSplitter

    # Ray workers must be able to load this module's functions and classes.
    if __name__ != "__main__":
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    train, val, _ = DataSplitter(0.6, 0.2, rnd_seed=SPLIT_SEED).execute(DigitsGetter().execute())
    data = (train, val)
    lrs = [float(f"{v:.3g}") for v in np.geomspace(3e-4, 3e-2, args.trials)]
    storage = args.storage or tempfile.mkdtemp(prefix="bench-overhead-")
    t_init = time.time()
    for attempt in range(3):  # the raylet may miss its 30 s start window on a busy box
        try:
            ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}, log_to_driver=False)
            break
        except Exception as exc:  # noqa: BLE001
            ray.shutdown()
            if attempt == 2:
                raise
            print(f"ray.init failed ({exc}); retrying", flush=True)
    print(f"ray.init: {time.time() - t_init:.1f} s", flush=True)
    runs: dict[str, list[tuple[float, dict[str, float], float]]] = {"ours": [], "raw": []}
    losses: dict[str, dict[float, float]] = {"ours": {}, "raw": {}}
    concurrency = None
    try:
        order = []
        for r in range(args.repeats):
            order += ["ours", "raw"] if r % 2 == 0 else ["raw", "ours"]
        for i, which in enumerate(order):
            name = f"{which}-{i}"
            load0 = _load()
            if which == "ours":
                wall, rows, concurrency = run_ours(data, lrs, args, storage, name)
            else:
                if concurrency is None:
                    from itwinai_ray.backends.ray import driver as ray_backend
                    from itwinai_ray.tuning import resources

                    concurrency = resources.max_concurrent_trials(
                        resources.trial_need(args.workers, None, False),
                        ray_backend.cluster_capacity())
                # A raw user computes floor(CPUs / (workers + 0.01)) by hand: the same value as
                # ours for >= 2 workers; for 1 worker ours runs the worker in the trial (no
                # 0.01 overhead), so ours may run one more trial at once.
                raw_conc = min(concurrency,
                               int(args.num_cpus // (args.workers + TRIAL_OVERHEAD_CPU)))
                wall, rows = run_raw(data, lrs, args, storage, name, raw_conc)
            s = _summary(rows)
            runs[which].append((wall, s, (load0 + _load()) / 2))
            for row in rows:
                if row["loss"] is not None:
                    losses[which][row["lr"]] = row["loss"]
            print(f"[{i}] {which:4s} wall {wall:6.1f} s  start->first step {s['first_step']:5.2f} s"
                  f"  first result {s['first_result']:5.2f} s  trial {s['trial']:5.2f} s"
                  f"  errors {s['errors']}  load {load0:.1f}->{_load():.1f}", flush=True)
    finally:
        ray.shutdown()
        if args.storage is None:
            shutil.rmtree(storage, ignore_errors=True)

    def agg(which: str, key: str | None) -> float:
        vals = [w if key is None else s[key] for w, s, _ in runs[which]]
        return statistics.fmean(vals)

    print()
    print(f"{args.trials} trials x {args.workers} workers x {args.epochs} epochs, batch "
          f"{args.batch_size}, hidden {args.hidden}, num_cpus {args.num_cpus}, "
          f"max_concurrent_trials ours {concurrency} / raw "
          f"{min(concurrency, int(args.num_cpus // (args.workers + TRIAL_OVERHEAD_CPU)))}, "
          f"{args.repeats} repeat(s), ABBA; {os.cpu_count()} cores, "
          f"mean 1-min load {statistics.fmean(load for v in runs.values() for *_, load in v):.1f}")
    for which in ("ours", "raw"):
        walls = ", ".join(f"{w:.1f}" for w, _, _ in runs[which])
        print(f"{which:4s}: wall {agg(which, None):6.1f} s (runs {walls})  "
              f"start->first step {agg(which, 'first_step'):5.2f} s  "
              f"first result {agg(which, 'first_result'):5.2f} s  "
              f"trial {agg(which, 'trial'):5.2f} s")
    ratio = agg("ours", None) / agg("raw", None)
    print(f"ratio ours/raw wall: {ratio:.3f}  (target <= 1.03: "
          f"{'met' if ratio <= 1.03 else 'NOT met'})")
    common = sorted(set(losses["ours"]) & set(losses["raw"]))
    if common:
        diffs = [abs(losses["ours"][lr] - losses["raw"][lr]) for lr in common]
        print("final val loss per lr (ours / raw): " + ", ".join(
            f"{lr:g}: {losses['ours'][lr]:.4f}/{losses['raw'][lr]:.4f}" for lr in common)
            + f"; max |diff| {max(diffs):.2e}")


if __name__ == "__main__":
    main()
