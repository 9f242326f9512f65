"""Training throughput (samples/s) per distributed strategy, same model and data, on CPU.

Strategies: ``none`` (1 process), ``ddp`` and ``deepspeed`` (ZeRO stage 1 and 2, torch Adam)
under torchrun, ``horovod`` under ``horovodrun --gloo``; each with 2 processes unless
``--nproc`` says otherwise. Every run trains the same MLP (64 -> hidden -> hidden -> 10) on the
same synthetic data through TorchTrainer; the first epoch is a warm-up, and throughput is the
samples of all ranks over the wall time of the remaining epochs (median of epoch times).
Strategies whose package is missing are reported as such, not skipped silently.

    python benchmarks/strategy_throughput.py [--epochs 4] [--samples 16384] [--hidden 256]
        [--batch-size 64] [--nproc 2] [--strategies none,ddp,deepspeed,horovod]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DS_CONFIG = {"optimizer": {"type": "Adam", "params": {"torch_adam": True}}}
STRATEGIES = {
    "none": "none",
    "ddp": {"name": "ddp", "backend": "gloo"},
    "deepspeed-zero1": {"name": "deepspeed", "backend": "gloo",
                        "config": {**DS_CONFIG, "zero_optimization": {"stage": 1}}},
    "deepspeed-zero2": {"name": "deepspeed", "backend": "gloo",
                        "config": {**DS_CONFIG, "zero_optimization": {"stage": 2}}},
    "horovod": "horovod",
}


def worker(args: argparse.Namespace) -> None:
    """One rank: train and, on rank 0, print one JSON line with the epoch times."""
    import torch
    from torch.utils.data import TensorDataset

    from itwinai_ray.examples.digits import DigitsTrainer

    class TimedTrainer(DigitsTrainer):
        def train_epoch(self) -> Any:
            self.strategy.barrier()
            start = time.perf_counter()
            loss = super().train_epoch()  # ends with a reduce over ranks
            self.epoch_times.append(time.perf_counter() - start)
            return loss

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, 64, generator=gen)
    y = (x[:, :10].argmax(dim=1)).long()
    trainer = TimedTrainer(
        epochs=args.epochs, strategy=json.loads(args.spec), random_seed=0, save_best=False,
        config={"batch_size": args.batch_size, "optim_lr": 1e-3, "optimizer": "adam",
                "hidden_size": args.hidden}, metrics={})
    trainer.epoch_times = []
    trainer.execute(TensorDataset(x, y))
    strategy = trainer.strategy
    if int(os.environ.get("RANK", os.environ.get("HOROVOD_RANK", "0"))) == 0:
        print("RESULT " + json.dumps({"epoch_times": trainer.epoch_times,
                                      "final_loss": trainer.history[-1]["train_loss"],
                                      "strategy": strategy.name}), flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(name: str, args: argparse.Namespace) -> dict:
    spec = json.dumps(STRATEGIES[name])
    own = [str(Path(__file__).resolve()), "--worker", "--spec", spec, "--epochs",
           str(args.epochs), "--samples", str(args.samples), "--hidden", str(args.hidden),
           "--batch-size", str(args.batch_size)]
    nproc = 1 if name == "none" else args.nproc
    if name == "none":
        cmd = [sys.executable, *own]
    elif name == "horovod":
        horovodrun = shutil.which("horovodrun", path=str(Path(sys.executable).parent))
        if horovodrun is None:
            return {"error": "horovod not installed: run scripts/install_horovod.sh"}
        cmd = [horovodrun, "--gloo", "-np", str(nproc), "-H", f"localhost:{nproc}",
               sys.executable, *own]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--master_port={_free_port()}", *own]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as cwd:  # checkpoints etc. stay out of the repo
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=900)
    # horovodrun prefixes each line with "[rank]<stdout>:"
    lines = [ln[ln.index("RESULT ") + len("RESULT "):] for ln in proc.stdout.splitlines()
             if "RESULT " in ln]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-800:]}
    result = json.loads(lines[-1])
    timed = result["epoch_times"][1:] or result["epoch_times"]  # drop the warm-up epoch
    per_epoch = statistics.median(timed)
    return {"processes": nproc, "samples_per_s": args.samples / per_epoch,
            "epoch_s": per_epoch, "final_loss": result["final_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spec", default='"none"', help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"{args.samples} samples x {args.epochs} epochs (first = warm-up), MLP hidden "
          f"{args.hidden}, batch {args.batch_size} per process, CPU, OMP_NUM_THREADS=1")
    print(f"{'strategy':<17}{'procs':>6}{'samples/s':>12}{'epoch s':>10}{'final loss':>12}")
    for name in args.strategies.split(","):
        res = launch(name.strip(), args)
        if "error" in res:
            print(f"{name:<17} failed: {res['error'].strip().splitlines()[-1]}")
            continue
        print(f"{name:<17}{res['processes']:>6}{res['samples_per_s']:>12.0f}"
              f"{res['epoch_s']:>10.2f}{res['final_loss']:>12.4f}")


if __name__ == "__main__":
    main()
