"""Issue 19: this project's HPO wall time vs itwinai 0.4.2's, on its HPO tutorial's shape.

itwinai 0.4.2's fashion-mnist HPO tutorial (``tutorials/hpo-workflows/fashion-mnist``) is a
Hydra YAML pipeline ``getter -> splitter -> TorchTrainer`` whose trainer overrides ``train()``
(``set_epoch``, ``log``, ``ray_report`` of the validation loss and a checkpoint object every
epoch) and carries ``ray_scaling_config`` / ``ray_tune_config`` / ``ray_run_config`` /
``ray_search_space`` and an MLflow logger. This script runs the same shape on work of its own,
written here (no code of itwinai's): an MLP 64-64-10 on ``sklearn.datasets.load_digits``
(90/10 split, no download), 2 DDP workers on gloo per trial, a grid of 4 learning rates, 2
epochs, metric ``loss`` (the validation loss), FIFO, MLflow tracking on (the tutorial's
logger; ours' default), and the same explicit trainer config on both sides (batch 32,
shuffled training data, ``num_workers_dataloader: 0`` and ``dist_backend: gloo``; with the
tutorial's ``config: null`` itwinai would start 4 DataLoader processes per loader).

One trainer module (``vsitw_digits.py``) is written to a temp dir per run, its text identical
on both sides except the import lines (``itwinai.*`` vs ``itwinai_ray``). Variants:

* **a itwinai**: itwinai 0.4.2 in its own venv (``--itwinai-python``), Ray Train V1
  (``RAY_TRAIN_V2_ENABLED=0``), as its tutorial runs it: a Ray head started beforehand
  (``ray start --head --num-cpus N --include-dashboard=false --block``; itwinai finds the
  cluster with ``ray status`` and ``ray.init(address="auto")``), then the YAML instantiated as
  itwinai's CLI does (OmegaConf + its ``itwinai.cwd`` resolver + ``hydra.utils.instantiate``)
  and the pipeline's steps executed; the head is stopped (SIGTERM, no drain) at the end.
  ``RAY_ADDRESS`` (the head's own port), ``RAY_AUTH_MODE=disabled``,
  ``MLFLOW_ALLOW_FILE_STORE=true`` (itwinai's ``./mlruns`` store; MLflow 3 refuses it
  otherwise and every trial errors) and the tutorial's ``RAY_CHDIR_TO_TRIAL_DIR=0``,
  ``RAY_DEDUP_LOGS=0`` are set for the head and the driver.
* **b ours**: this project (``--ours-python``, i.e. the ``.venv`` whose editable install is
  ``/work/main``'s working tree): the same trainer wrapped in
  ``itwinai_ray.RayTorchTrainer(trainer=..., scaling_config={"num_workers": 2}, ...)``
  with ``search_space={"optim_lr": {"grid_search": [...]}}``, on a local Ray started in the
  process (``benchmarks/suite/common.ray_session``: ``ray.init(address="local", num_cpus=N,
  include_dashboard=False)``), Train V2, one Train run per trial.
* **c ours pooled**: as b with ``tune_config={"reuse_actors": True, ...}``: a trial process
  keeps its 2 worker processes for the next trial.

Every run is its own set of processes, started from this script, with
``OMP_NUM_THREADS=1`` and ``RAY_USAGE_STATS_DISABLE=1`` for all. What is counted:

* **wall** (the headline): from launching the variant's first process to the exit of its
  last, i.e. Python start, imports (torch, ray, the framework), Ray start, data, the whole HPO
  call, reading the results, Ray shutdown. For a: ``ray start`` until it reports the cluster
  up, then the driver process, then the head's shutdown.
* **hpo**: the HPO call alone (``Pipeline`` trainer step's ``execute`` for a,
  ``RayTorchTrainer.execute`` for b/c), Ray already up, timed inside the driver.
* **ray start**: ``ray start`` until "Ray runtime started" (a); ``ray.init`` (b/c).

With ``--num-cpus 3`` both sides run one trial at a time: under Train V1 a trial needs 1 CPU
for its coordinator plus 1 per worker (3); ours needs 0.01 + 2. A run is **invalid** (not
timed into the table) when its driver fails, when fewer than 4 trials finish all epochs
without error, or when itwinai says it did not use Ray ("Ray cluster was not detected",
"it's ignored as Ray is not used", "Falling back to non-distributed strategy"): itwinai
exits 0 in those cases and would report a fast time.

Order: ABC CBA ... (``--repeats`` passes, default 2). Run alone on the machine
(``flock /tmp/heavy.lock``): the numbers are timings.

    flock /tmp/heavy.lock .venv/bin/python benchmarks/vs_itwinai.py [--repeats 2]
        [--num-cpus 3] [--itwinai-python /work/itwinai042-venv/bin/python] [--no-mlflow]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LRS = [1e-4, 3e-4, 1e-3, 3e-3]
WORKERS, EPOCHS, SEED = 2, 2, 0
NAMES = {"a": "itwinai 0.4.2", "b": "ours", "c": "ours pooled"}
#: itwinai prints these (and exits 0) when it trained without Ray, i.e. without HPO.
NOT_ON_RAY = ("Ray cluster was not detected", "it's ignored as Ray is not used",
              "Falling back to non-distributed strategy",
              "cluster seems not to be running")

# ----------------------------------------------------------------------------------------
# What each run writes to its temp dir
# ----------------------------------------------------------------------------------------
#: The trainer module, in the tutorial's style; {imports} differ between the two sides.
MODULE = '''"""Digits MLP in the shape of itwinai 0.4.2's HPO tutorial (written by vs_itwinai.py)."""
import torch
from torch.utils.data import TensorDataset, random_split

{imports}


class DigitsGetter(DataGetter):
    def execute(self):
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32),
                             torch.tensor(y, dtype=torch.long))


class DigitsSplitter(DataSplitter):
    def execute(self, dataset):
        n = len(dataset)
        n_train = int(self.train_proportion * n)
        n_val = int(self.validation_proportion * n)
        train, val, _ = random_split(dataset, [n_train, n_val, n - n_train - n_val],
                                     torch.Generator().manual_seed(1))
        return train, val, None


class DigitsHPOTrainer(TorchTrainer):
    """Overrides train() as the tutorial's trainer does: log, then ray_report each epoch."""

    def create_model_loss_optimizer(self):
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                    torch.nn.Linear(64, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=self.config.optim_lr)
        self.model, self.optimizer, _ = self.strategy.distributed(model, optimizer)
        self.loss = torch.nn.CrossEntropyLoss()

    def train(self):
        for self.current_epoch in range(self.epochs):
            self.set_epoch()
            self.model.train()
            train_losses = []
            for x, y in self.train_dataloader:
                self.optimizer.zero_grad()
                loss = self.loss(self.model(x), y)
                loss.backward()
                self.optimizer.step()
                train_losses.append(float(loss))
            self.model.eval()
            val_losses = []
            with torch.no_grad():
                for x, y in self.validation_dataloader:
                    val_losses.append(float(self.loss(self.model(x), y)))
            train_loss = sum(train_losses) / len(train_losses)
            val_loss = sum(val_losses) / len(val_losses)
            self.log(train_loss, "train_loss", kind="metric", step=self.current_epoch)
            self.log(val_loss, "val_loss", kind="metric", step=self.current_epoch)
            self.ray_report(metrics={{"loss": val_loss}},
                            checkpoint_data={{"epoch": self.current_epoch,
                                              "val_loss": val_loss}})
'''
IMPORTS = {
    "itwinai": "from itwinai.components import DataGetter, DataSplitter\n"
               "from itwinai.torch.trainer import TorchTrainer",
    "ours": "from itwinai_ray import DataGetter, DataSplitter, TorchTrainer",
}
#: The trainer config of both sides (the tutorial's is null; see the module docstring).
TRAIN_CONFIG = {"batch_size": 32, "optim_lr": 1e-3, "shuffle_train": True,
                "num_workers_dataloader": 0, "dist_backend": "gloo"}

#: itwinai's YAML, in its tutorial's layout (Hydra ``_target_`` style).
ITWINAI_YAML = """hpo_training_pipeline:
  _target_: itwinai.pipeline.Pipeline
  steps:
    - _target_: vsitw_digits.DigitsGetter
    - _target_: vsitw_digits.DigitsSplitter
      train_proportion: 0.9
      validation_proportion: 0.1
      test_proportion: 0.0
    - _target_: vsitw_digits.DigitsHPOTrainer
      config: {config}
      epochs: {epochs}
      random_seed: {seed}
      ray_scaling_config:
        _target_: ray.train.ScalingConfig
        num_workers: {workers}
        use_gpu: false
        resources_per_worker:
          CPU: 1
      ray_tune_config:
        _target_: ray.tune.TuneConfig
        num_samples: 1
        metric: loss
        mode: min
      ray_run_config:
        _target_: ray.tune.RunConfig
        storage_path: ${{itwinai.cwd:}}/ray_checkpoints
        name: digits-hpo
      ray_search_space:
        optim_lr:
          grid_search: {lrs}
      strategy: ddp
{logger}"""
ITWINAI_LOGGER = """      logger:
        _target_: itwinai.loggers.LoggersCollection
        loggers:
          - _target_: itwinai.loggers.MLFlowLogger
            experiment_name: digits HPO
            log_freq: batch
"""

#: itwinai's driver: what ``itwinai exec-pipeline +pipe_key=hpo_training_pipeline`` does
#: (load, resolvers, instantiate, execute), with the trainer step timed and its Tune results
#: written to result.json.
ITWINAI_DRIVER = '''import json, os, sys, time
t_start = time.time()
import itwinai, ray, torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

OmegaConf.register_new_resolver("itwinai.cwd", os.getcwd)
cfg = OmegaConf.load("config.yaml")
pipeline = instantiate(OmegaConf.select(cfg, "hpo_training_pipeline"), _convert_="all")
*prep, trainer = pipeline.steps
args = ()
for step in prep:
    args = step.execute(*args)
    args = args if isinstance(args, tuple) else (args,)
t0 = time.time()
trainer.execute(*args)
hpo_s = time.time() - t0
grid = getattr(trainer, "tune_result_grid", None)
trials = []
for r in (grid if grid is not None else []):
    m = r.metrics or {}
    trials.append({"lr": (r.config or {}).get("train_loop_config", {}).get("optim_lr"),
                   "error": repr(r.error) if r.error else None, "loss": m.get("loss"),
                   "epochs": m.get("training_iteration")})
from importlib.metadata import version
res = {"hpo_s": hpo_s, "imports_to_end_s": time.time() - t_start, "trials": trials,
       "strategy": type(trainer.strategy).__name__, "train_v2": os.environ.get(
           "RAY_TRAIN_V2_ENABLED"),
       "versions": {"itwinai": version("itwinai"), "ray": ray.__version__,
                    "torch": torch.__version__, "mlflow": version("mlflow"),
                    "python": sys.version.split()[0]}}
json.dump(res, open("result.json", "w"))
'''


# ----------------------------------------------------------------------------------------
# child: ours (b, c), run by --ours-python as this file with --child
# ----------------------------------------------------------------------------------------
def _load_common() -> Any:
    """benchmarks/suite/common.py, loaded by path: putting the repo root on ``sys.path``
    would import the checkout's ``itwinai_ray`` instead of the venv's editable install."""
    spec = importlib.util.spec_from_file_location("vsitw_common", HERE / "suite" / "common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def child_ours(args: argparse.Namespace) -> None:
    t_start = time.time()
    import ray
    import torch
    from vsitw_digits import DigitsGetter, DigitsHPOTrainer, DigitsSplitter

    import itwinai_ray
    from itwinai_ray import RayTorchTrainer

    common = _load_common()
    with common.ray_session(args.num_cpus) as ray_start_s:
        train, val, _ = DigitsSplitter(0.9, 0.1, 0.0).execute(DigitsGetter().execute())
        tune_config: dict[str, Any] = {"num_samples": 1, "metric": "loss", "mode": "min",
                                       "scheduler": "fifo"}
        if args.reuse_actors:
            tune_config["reuse_actors"] = True
        hpo = RayTorchTrainer(
            trainer=DigitsHPOTrainer(config=dict(TRAIN_CONFIG), epochs=EPOCHS,
                                     random_seed=SEED),
            scaling_config={"num_workers": WORKERS},
            tune_config=tune_config,
            run_config=common.quiet_run_config(os.path.join(os.getcwd(), "runs"), "digits-hpo",
                                               mlflow=args.mlflow),
            search_space={"optim_lr": {"grid_search": LRS}},
        )
        t0 = time.time()
        *_, results = hpo.execute(train, val)
        hpo_s = time.time() - t0
    trials = [{"lr": row.config.get("optim_lr"), "status": row.status, "loss": row.last,
               "epochs": row.epochs, "error": row.error} for row in results.rows]
    from importlib.metadata import version

    res = {"hpo_s": hpo_s, "ray_start_s": ray_start_s, "imports_to_end_s": time.time() - t_start,
           "trials": trials, "itwinai_ray_file": itwinai_ray.__file__,
           "versions": {"itwinai_ray": itwinai_ray.__version__, "ray": ray.__version__,
                        "torch": torch.__version__, "mlflow": version("mlflow"),
                        "python": sys.version.split()[0]}}
    Path("result.json").write_text(json.dumps(res))


# ----------------------------------------------------------------------------------------
# parent: one run of a variant
# ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _base_env(workdir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_", "MLFLOW_", "VIRTUAL_ENV"))}
    env.update(OMP_NUM_THREADS="1", RAY_USAGE_STATS_DISABLE="1", PYTHONPATH=workdir,
               PYTHONUNBUFFERED="1")
    return env


def _write_module(workdir: str, side: str) -> None:
    Path(workdir, "vsitw_digits.py").write_text(MODULE.format(imports=IMPORTS[side]))


def run_itwinai(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    _write_module(workdir, "itwinai")
    Path(workdir, "config.yaml").write_text(ITWINAI_YAML.format(
        config=json.dumps(TRAIN_CONFIG), epochs=EPOCHS, seed=SEED, workers=WORKERS,
        lrs=json.dumps(LRS), logger=ITWINAI_LOGGER if args.mlflow else ""))
    Path(workdir, "driver.py").write_text(ITWINAI_DRIVER)
    port = _free_port()
    env = _base_env(workdir)
    env.update(RAY_ADDRESS=f"127.0.0.1:{port}", RAY_AUTH_MODE="disabled",
               RAY_TRAIN_V2_ENABLED="0", MLFLOW_ALLOW_FILE_STORE="true",
               RAY_CHDIR_TO_TRIAL_DIR="0", RAY_DEDUP_LOGS="0",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    # As with the venv activated: itwinai runs `ray status` from PATH (in every worker too).
    venv_bin = str(Path(args.itwinai_python).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    ray_bin = os.path.join(venv_bin, "ray")
    ray_tmp = tempfile.mkdtemp(prefix="vsi-", dir="/tmp")  # short: Ray's socket paths
    head_log = open(os.path.join(workdir, "head.log"), "w")
    out: dict[str, Any] = {"ray_tmp": ray_tmp}
    t0 = time.time()
    head = subprocess.Popen(
        [ray_bin, "start", "--head", f"--port={port}", f"--num-cpus={args.num_cpus}",
         "--num-gpus=0", "--include-dashboard=false", f"--temp-dir={ray_tmp}", "--block"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    up = threading.Event()

    def drain() -> None:
        for line in head.stdout:
            head_log.write(line)
            if "Ray runtime started" in line:
                up.set()
        up.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        up.wait(timeout=180)
        out["ray_start_s"] = time.time() - t0
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode} (see head.log)")
        driver = subprocess.run([args.itwinai_python, "driver.py"], cwd=workdir, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=args.timeout)
        out["rc"] = driver.returncode
        out["log"] = driver.stdout
    finally:
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)  # the head's own process group
                head.wait()
        out["wall_s"] = time.time() - t0
        head_log.close()
    out["leftover_pids"] = _leftovers(ray_tmp)
    return out


def _leftovers(marker: str) -> list[int]:
    """Processes whose command line names this run's Ray temp dir (they should be gone)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def run_ours(args: argparse.Namespace, workdir: str, reuse: bool) -> dict[str, Any]:
    _write_module(workdir, "ours")
    cmd = [args.ours_python, str(Path(__file__).resolve()), "--child", "ours",
           "--num-cpus", str(args.num_cpus)]
    cmd += ["--reuse-actors"] if reuse else []
    cmd += [] if args.mlflow else ["--no-mlflow"]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=workdir, env=_base_env(workdir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=args.timeout)
    return {"wall_s": time.time() - t0, "rc": proc.returncode, "log": proc.stdout}


def run_variant(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix=f"vsitw-{variant}-")
    load0 = os.getloadavg()[0]
    try:
        out = (run_itwinai(args, workdir) if variant == "a"
               else run_ours(args, workdir, reuse=variant == "c"))
    except subprocess.TimeoutExpired as exc:
        out = {"wall_s": float("nan"), "rc": None, "log": str(exc.output or "")}
        out["invalid"] = f"timed out after {args.timeout} s"
    out.update(variant=variant, workdir=workdir, load1=[load0, os.getloadavg()[0]])
    result_file = Path(workdir, "result.json")
    if result_file.exists():
        out.update(json.loads(result_file.read_text()))
    out.setdefault("invalid", _why_invalid(out))
    return out


def _why_invalid(out: dict[str, Any]) -> str | None:
    if out.get("rc") != 0:
        return f"driver exit status {out.get('rc')}"
    if out["variant"] == "a":
        hits = [s for s in NOT_ON_RAY if s in out.get("log", "")]
        if hits:
            return f"itwinai did not run on Ray: {hits[0]!r}"
        if out.get("strategy") != "RayDDPStrategy":
            return f"itwinai strategy {out.get('strategy')}, not RayDDPStrategy"
    trials = out.get("trials")
    if trials is None:
        return "no result.json"
    bad = [t for t in trials if t.get("error") or t.get("status") == "error"
           or t.get("loss") is None or t.get("epochs") != EPOCHS]
    if len(trials) != len(LRS) or bad:
        first = bad[0] if bad else {}
        return (f"{len(trials)} trials, {len(bad)} without {EPOCHS} clean epochs"
                f" (e.g. {str(first.get('error'))[:300]})")
    return None


# ----------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------
def _ours_checkout(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The git commit (and uncommitted changes) of the itwinai_ray that ours' runs imported."""
    file = next((r["itwinai_ray_file"] for r in runs if r.get("itwinai_ray_file")), None)
    if file is None:
        return None
    root = str(Path(file).resolve().parents[1])

    def git(*cmd: str) -> str:
        return subprocess.run(["git", "-C", root, *cmd], capture_output=True,
                              text=True).stdout.strip()

    return {"path": root, "commit": git("rev-parse", "HEAD"),
            "uncommitted": git("status", "--short", "--", "itwinai_ray").splitlines()}


def _stats(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), min(values)) if values else (float("nan"),) * 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="passes: ABC, CBA, ABC, ...")
    parser.add_argument("--num-cpus", type=int, default=3, help="logical CPUs of each Ray")
    parser.add_argument("--itwinai-python", default="/work/itwinai042-venv/bin/python")
    parser.add_argument("--ours-python", default=sys.executable)
    parser.add_argument("--no-mlflow", dest="mlflow", action="store_false",
                        help="no MLflow on either side (default: on, as in the tutorial)")
    parser.add_argument("--only", default="abc", help="variants to run, e.g. 'bc'")
    parser.add_argument("--timeout", type=int, default=900, help="per run, s")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--keep", action="store_true", help="keep the runs' temp dirs")
    parser.add_argument("--child", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("--reuse-actors", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_ours(args)
        return

    import shutil

    order = []
    for r in range(args.repeats):
        order += [v for v in ("abc" if r % 2 == 0 else "cba") if v in args.only]
    started = datetime.datetime.now(datetime.timezone.utc)
    runs = []
    for i, variant in enumerate(order):
        out = run_variant(args, variant)
        runs.append(out)
        status = f"INVALID: {out['invalid']}" if out["invalid"] else "ok"
        print(f"[{i}] {variant} {NAMES[variant]:13s} wall {out['wall_s']:6.1f} s  "
              f"hpo {out.get('hpo_s', float('nan')):6.1f} s  "
              f"ray start {out.get('ray_start_s', float('nan')):4.1f} s  "
              f"load {out['load1'][0]:.1f}->{out['load1'][1]:.1f}  {status}", flush=True)
        if out["invalid"]:
            print("    log tail: " + "\n    ".join(out.get("log", "").splitlines()[-15:]),
                  flush=True)
        if out.get("leftover_pids"):
            print(f"    leftover Ray processes of this run: {out['leftover_pids']}", flush=True)
        if not args.keep:
            shutil.rmtree(out["workdir"], ignore_errors=True)
            if out.get("ray_tmp"):
                shutil.rmtree(out["ray_tmp"], ignore_errors=True)

    summary: dict[str, Any] = {}
    for v in sorted(set(order)):
        ok = [r for r in runs if r["variant"] == v and not r["invalid"]]
        summary[v] = {
            "name": NAMES[v], "valid_runs": len(ok),
            "invalid": [r["invalid"] for r in runs if r["variant"] == v and r["invalid"]],
            "wall_s": [round(r["wall_s"], 2) for r in ok],
            "hpo_s": [round(r["hpo_s"], 2) for r in ok],
            "ray_start_s": [round(r["ray_start_s"], 2) for r in ok],
            "final_loss_by_lr": {str(t["lr"]): t["loss"] for t in ok[-1]["trials"]} if ok else {},
            "versions": next((r["versions"] for r in runs
                              if r["variant"] == v and "versions" in r), None),
        }
    print()
    print(f"{len(LRS)} lrs (grid) x {WORKERS} DDP workers (gloo) x {EPOCHS} epochs, FIFO, "
          f"MLflow {'on' if args.mlflow else 'off'}, Ray of {args.num_cpus} logical CPUs per "
          f"run (1 trial at a time), {os.cpu_count()} cores, order "
          f"{' '.join(''.join(order[i:i + 3]) for i in range(0, len(order), 3))}")
    print(f"{'variant':18s} {'wall mean':>9s} {'wall min':>9s} {'hpo mean':>9s} "
          f"{'hpo min':>8s}  runs (wall s)")
    for v, s in summary.items():
        wm, wmin = _stats(s["wall_s"])
        hm, hmin = _stats(s["hpo_s"])
        print(f"{v} {s['name']:16s} {wm:9.1f} {wmin:9.1f} {hm:9.1f} {hmin:8.1f}  "
              f"{', '.join(f'{w:.1f}' for w in s['wall_s'])}"
              + (f"  ({len(s['invalid'])} invalid)" if s["invalid"] else ""))
    ratios = {}
    if "a" in summary and summary["a"]["valid_runs"]:
        for v in ("b", "c"):
            if v in summary and summary[v]["valid_runs"]:
                ratios[v] = {
                    key: {"mean": _stats(summary[v][key])[0] / _stats(summary["a"][key])[0],
                          "min": _stats(summary[v][key])[1] / _stats(summary["a"][key])[1]}
                    for key in ("wall_s", "hpo_s")}
                r = ratios[v]
                print(f"ratio {NAMES[v]}/itwinai: wall {r['wall_s']['mean']:.2f} (mean), "
                      f"{r['wall_s']['min']:.2f} (min); hpo call {r['hpo_s']['mean']:.2f} "
                      f"(mean), {r['hpo_s']['min']:.2f} (min)  [issue 19 target: wall <= 0.6]")
    else:
        print("no valid itwinai run: no ratios")
    for s in summary.values():
        if s["final_loss_by_lr"]:
            print(f"final val loss by lr, {s['name']}: " + ", ".join(
                f"{lr}: {loss:.4f}" for lr, loss in s["final_loss_by_lr"].items()
                if loss is not None))

    Path(args.out).mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y-%m-%dT%H%M%SZ")
    path = Path(args.out, f"{stamp}-vs-itwinai.json")
    record = {
        "benchmark": "vs_itwinai", "issue": 19, "started_utc": started.isoformat(),
        "setting": {"lrs": LRS, "workers": WORKERS, "epochs": EPOCHS, "scheduler": "fifo",
                    "mlflow": args.mlflow, "num_cpus": args.num_cpus,
                    "cores": os.cpu_count(), "order": order, "train_config": TRAIN_CONFIG},
        "ours_checkout": _ours_checkout(runs), "summary": summary,
        "ratios_vs_itwinai": ratios,
        "runs": [{k: v for k, v in r.items() if k not in ("log", "workdir")} for r in runs],
    }
    path.write_text(json.dumps(record, indent=1))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
