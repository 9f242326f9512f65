"""Tear-down of a 2-worker trial (issue 19): last report -> the trial's resources free again.

Runs the same FIFO grid of learning rates (digits MLP, 2 DDP workers per trial, a checkpoint
per epoch) through ``RayTorchTrainer`` ("ours", MLflow off) and through a hand-written Ray Tune
function trainable wrapping a Train V2 ``TorchTrainer`` with ``TuneReportCallback`` ("raw",
the same loop as ``overhead_vs_raw_ray.py``), on one local Ray of ``--num-cpus`` logical CPUs
(workers ask for ``--worker-cpus`` each, so 2 trials run at a time), in ABBA order.

Per trial, on one host clock (``time.time()``):

* ``report``: rank 0 after its last ``ray.train.report`` returned (a file the worker writes);
* ``fit``: ``TorchTrainer.fit()`` returned in the trial process (patched there);
* ``fn``: the Tune function trainable returned (ours: after forwarding and clean-up);
* ``proc``: the trial process is gone (the driver polls its pid every 50 ms);
* ``pg``: the worker group's placement group is REMOVED (``ray.util.placement_group_table()``
  polled every 50 ms; rank 0 writes the group's id);
* ``next``: the first statement of the next trial that started after this one's ``fn``.

All are printed as seconds after ``report``. The target: ``pg`` (and the trial's Tune slot,
``fn``/``proc``) <= 1 s.

    python benchmarks/teardown.py [--trials 4] [--epochs 2] [--num-cpus 3] [--repeats 1]
        [--variants ours,ours-cleaner,raw] [--no-dashboard]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import overhead_vs_raw_ray as base  # noqa: E402

ENV_DIR = "ITWINAI_RAY_TEARDOWN_DIR"
PHASES = ("fit", "fn", "proc", "pg", "next")


def _note(key: Any, **values: Any) -> None:
    """Merge ``values`` into ``<ENV_DIR>/<key>.json`` (one file per trial, keyed by its lr)."""
    path = Path(os.environ[ENV_DIR]) / f"{float(key):.10g}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(values)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _note_worker(key: Any) -> None:
    """Rank 0, after a report: the time and the worker group's placement group."""
    import ray.train
    import ray.util

    if ray.train.get_context().get_world_rank() != 0:
        return
    pg = ray.util.get_current_placement_group()
    _note(key, report=time.time(), pg=pg.id.hex() if pg is not None else None)


def _patch_fit(key: Any) -> None:
    """In the trial process: note when ``TorchTrainer.fit`` returns."""
    from ray.train.torch import TorchTrainer

    original = TorchTrainer.fit
    if getattr(original, "_teardown_bench", False):
        original = original.__wrapped__

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            _note(key, fit=time.time())

    fit._teardown_bench = True  # type: ignore[attr-defined]
    fit.__wrapped__ = original  # type: ignore[attr-defined]
    TorchTrainer.fit = fit


def _timed(key: Any, run: Any) -> Any:
    _note(key, start=time.time(), pid=os.getpid())
    _patch_fit(key)
    try:
        return run()
    finally:
        _note(key, fn=time.time())


# ----------------------------------------------------------------------------------------
# ours and raw, instrumented
# ----------------------------------------------------------------------------------------
class TeardownDigitsTrainer(base.BenchDigitsTrainer):
    def _finish_pending_epoch(self) -> None:
        super()._finish_pending_epoch()
        _note_worker(self.config.optim_lr)


def _ours_trial_fn(config: dict[str, Any], spec: Any) -> None:
    from itwinai_ray.backends.ray import driver as ray_backend  # unpatched in the trial

    return _timed(config["optim_lr"], lambda: ray_backend._trial_fn(config, spec))


def _ours_cleaner_trial_fn(config: dict[str, Any], spec: Any) -> None:
    """Ours as before issue 19's change: Ray Train's placement-group cleaner kept."""
    from ray.train.torch import TorchTrainer

    from itwinai_ray.backends.ray import train_run

    train_run.torch_trainer_class = lambda has_registry: TorchTrainer  # this trial process
    return _ours_trial_fn(config, spec)


def _raw_loop(cfg: dict[str, Any]) -> None:
    import ray.train

    report = ray.train.report

    def noted(*args: Any, **kwargs: Any) -> None:
        report(*args, **kwargs)
        _note_worker(cfg["lr"])

    ray.train.report = noted
    try:
        base.raw_train_loop(cfg)
    finally:
        ray.train.report = report


def run_ours(data: Any, lrs: list[float], args: argparse.Namespace, storage: str,
             name: str, cleaner: bool = False) -> float:
    from itwinai_ray import RayTorchTrainer
    from itwinai_ray.backends.ray import driver as ray_backend

    trainer = TeardownDigitsTrainer(
        config={"batch_size": args.batch_size, "optim_lr": lrs[0], "hidden_size": 64},
        epochs=args.epochs, random_seed=base.SEED)
    hpo = RayTorchTrainer(
        trainer=trainer,
        scaling_config={"num_workers": 2, "resources_per_worker": {"CPU": args.worker_cpus}},
        tune_config={"num_samples": 1, "metric": "loss", "mode": "min", "scheduler": "fifo"},
        run_config={"storage_path": storage, "name": name, "mlflow": False},
        search_space={"optim_lr": {"grid_search": lrs}},
    )
    fn = _ours_cleaner_trial_fn if cleaner else _ours_trial_fn
    original, ray_backend._trial_fn = ray_backend._trial_fn, fn
    fn.__mixins__ = original.__mixins__  # type: ignore[attr-defined]
    try:
        t0 = time.time()
        hpo.execute(*data)
        return time.time() - t0
    finally:
        ray_backend._trial_fn = original


def run_raw(data: Any, lrs: list[float], args: argparse.Namespace, storage: str,
            name: str) -> float:
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    settings = {"workers": 2, "epochs": args.epochs, "batch_size": args.batch_size,
                "hidden": 64, "train_storage": os.path.join(storage, name, "_train"),
                "worker_cpus": args.worker_cpus}

    def trainable(config: dict[str, Any], data: Any, settings: dict[str, Any]) -> None:
        def run() -> None:
            trial_id = ray.tune.get_context().get_trial_id()
            TorchTrainer(
                _raw_loop,
                train_loop_config={**settings, "lr": config["lr"], "data": data,
                                   "t_trial_start": time.time()},
                scaling_config=ray.train.ScalingConfig(
                    num_workers=2, resources_per_worker={"CPU": settings["worker_cpus"]}),
                run_config=ray.train.RunConfig(
                    name=f"{trial_id}_{time.strftime('%Y%m%d-%H%M%S')}",
                    storage_path=settings["train_storage"],
                    callbacks=[TuneReportCallback()]),
            ).fit()

        _timed(config["lr"], run)

    t0 = time.time()
    tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=data, settings=settings),
                            {"cpu": base.TRIAL_OVERHEAD_CPU}),
        param_space={"lr": tune.grid_search(lrs)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=1,
                                    max_concurrent_trials=args.concurrency),
        run_config=tune.RunConfig(name=name, storage_path=storage),
    ).fit()
    return time.time() - t0


# ----------------------------------------------------------------------------------------
# driver side: watch processes and placement groups
# ----------------------------------------------------------------------------------------
class Watcher(threading.Thread):
    """Polls the trial processes (pids from the notes) and all placement groups."""

    def __init__(self, notes: Path) -> None:
        super().__init__(daemon=True)
        self.notes, self.stop = notes, threading.Event()
        self.proc_gone: dict[int, float] = {}
        self.pg_removed: dict[str, float] = {}

    def run(self) -> None:
        import ray.util

        while not self.stop.wait(0.05):
            now = time.time()
            for note in self.notes.glob("*.json"):
                pid = json.loads(note.read_text() or "{}").get("pid")
                if pid and pid not in self.proc_gone and not _alive(pid):
                    self.proc_gone[pid] = now
            for pg_id, info in ray.util.placement_group_table().items():
                if info.get("state") == "REMOVED" and pg_id not in self.pg_removed:
                    self.pg_removed[pg_id] = now


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _rows(notes: Path, watcher: Watcher) -> list[dict[str, Any]]:
    trials = [json.loads(p.read_text()) for p in sorted(notes.glob("*.json"))]
    starts = sorted(t["start"] for t in trials)
    rows = []
    for t in sorted(trials, key=lambda t: t["start"]):
        later = [s for s in starts if s > t.get("fn", float("inf"))]
        at = {"fit": t.get("fit"), "fn": t.get("fn"), "proc": watcher.proc_gone.get(t["pid"]),
              "pg": watcher.pg_removed.get(t.get("pg") or ""),
              "next": later[0] if later else None}
        rows.append({k: (v - t["report"] if v is not None else None) for k, v in at.items()})
    return rows


def _fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v:6.2f}"


def _print(label: str, rows: list[dict[str, Any]], wall: float, load: tuple) -> None:
    print(f"\n{label}: wall {wall:.1f} s, 1-min load {load[0]:.2f} -> {load[1]:.2f}")
    print("  trial  " + "  ".join(f"{p:>6}" for p in PHASES) + "   (s after last report)")
    for i, row in enumerate(rows):
        print(f"  {i:5d}  " + "  ".join(_fmt(row[p]) for p in PHASES))
    med = {p: statistics.median(v) if (v := [r[p] for r in rows if r[p] is not None])
           else None for p in PHASES}
    print("  median " + "  ".join(_fmt(med[p]) for p in PHASES), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--num-cpus", type=float, default=3)
    parser.add_argument("--worker-cpus", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="ABBA pairs")
    parser.add_argument("--variants", default="ours,raw",
                        help="comma-separated, run in ABC CBA order: ours, ours-cleaner "
                             "(Ray's placement-group cleaner kept, as before issue 19), raw")
    parser.add_argument("--address", help="a running Ray cluster (default: a local Ray)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="ray.init(include_dashboard=False); default: Ray's default, as "
                             "the product's local Ray (the dashboard when ray[default] is "
                             "installed)")
    args = parser.parse_args()

    import ray
    import ray.cloudpickle

    from itwinai_ray.components import DataSplitter
    from itwinai_ray.examples.digits import DigitsGetter

    # Ray workers load this module's and the base benchmark's code by value.
    ray.cloudpickle.register_pickle_by_value(base)
    if __name__ != "__main__":
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    data = DataSplitter(0.6, 0.2, rnd_seed=base.SPLIT_SEED).execute(DigitsGetter().execute())
    data = data[:2]
    lrs = [10 ** (-3 + 1.5 * i / max(1, args.trials - 1)) for i in range(args.trials)]
    root = Path(tempfile.mkdtemp(prefix="teardown-bench-"))
    os.environ[ENV_DIR] = str(root / "notes")
    env = {"env_vars": {"OMP_NUM_THREADS": "1", ENV_DIR: os.environ[ENV_DIR]}}
    if args.address:  # a running cluster (ray start --head), as on SLURM
        ray.init(address=args.address, runtime_env=env, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=args.num_cpus, runtime_env=env,
                 include_dashboard=False if args.no_dashboard else None, log_to_driver=False)
    variants = args.variants.split(",")
    order = (variants + variants[::-1]) * args.repeats
    for i, which in enumerate(order):
        notes = root / "notes"
        notes.mkdir(exist_ok=True)
        for old in notes.glob("*"):
            old.unlink()
        watcher = Watcher(notes)
        watcher.start()
        load0 = os.getloadavg()[0]
        run = {"ours": run_ours, "raw": run_raw,
               "ours-cleaner": lambda *a: run_ours(*a, cleaner=True)}[which]
        wall = run(data, lrs, args, str(root / "runs"), f"{which}-{i}")
        time.sleep(1.0)  # let the watcher see the last process and group go
        watcher.stop.set()
        watcher.join()
        _print(f"[{i}] {which}", _rows(notes, watcher), wall, (load0, os.getloadavg()[0]))
    print(f"\nexperiments: {root}; Ray session: "
          f"{ray._private.worker._global_node.get_session_dir_path()}")


if __name__ == "__main__":
    main()
