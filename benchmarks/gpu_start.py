"""Issue 19's GPU part: HPO start times of 2 trials x 1 GPU, ours vs hand-written Ray.

    python benchmarks/gpu_start.py                 # on a GPU machine: NCCL, about 3 minutes
    python benchmarks/gpu_start.py --device cpu    # the same script on CPU (gloo), to check it

The digits MLP of ``overhead_vs_raw_ray.py`` (same data, model and epochs on both sides), 2
learning rates x ``--workers`` GPU workers per trial x ``--epochs``, FIFO, in ABBA order:
"ours" (``RayTorchTrainer``, ``use_gpu: true``; with 1 worker the trial process is the
worker) and "raw" (Ray Tune + a Train V2 ``TorchTrainer(use_gpu=True)`` per trial: an NCCL
group on the GPU), plus "ours pooled" (``reuse_actors: true``) when ``--workers`` >= 2.
Printed per variant: wall time of the HPO call, and each trial's start -> first training
step (``t_first_step - t_trial_start``, rank 0's clock), with the GPU's name. Trials run as
many at once as the GPUs allow. Exit 2 without a GPU (unless ``--device cpu``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import overhead_vs_raw_ray as ovr  # noqa: E402
from benchmarks.suite import common  # noqa: E402
from benchmarks.suite import overhead as item  # noqa: E402


def _gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=True)
        return out.stdout.strip().replace("\n", "; ")
    except (OSError, subprocess.SubprocessError):
        return "no nvidia-smi"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--workers", type=int, default=1, help="GPUs (workers) per trial")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="ABBA pairs")
    args = parser.parse_args(argv)
    import torch

    if args.device == "gpu" and not torch.cuda.is_available():
        print("gpu_start: no CUDA GPU here (torch.cuda.is_available() is False); "
              "run with --device cpu to check the script.", file=sys.stderr)
        return 2
    a = item._args(args.trials, args.workers, args.epochs)
    a.use_gpu = args.device == "gpu"
    gpus = torch.cuda.device_count() if a.use_gpu else 0
    slots = max(1, gpus // args.workers) if a.use_gpu else 2
    num_cpus = max(os.cpu_count() or 2, slots * (args.workers + 1))
    variants = ["ours", "raw"] + (["ours_pooled"] if args.workers >= 2 else [])
    order = [v for r in range(args.repeats) for v in (variants if r % 2 == 0 else variants[::-1])]
    print(f"device: {args.device}, {gpus} GPU(s): {_gpu_name() if a.use_gpu else '-'}; "
          f"{args.trials} trials x {args.workers} worker(s) x {args.epochs} epochs, "
          f"{slots} trial(s) at once, order {' '.join(order)}", flush=True)
    common.register_by_value(sys.modules[ovr.__name__])
    data = common.digits_split()
    lrs = item._lrs(args.trials)
    walls: dict[str, list[float]] = {v: [] for v in variants}
    starts: dict[str, list[float]] = {v: [] for v in variants}
    with common.ray_session(num_cpus), common.scratch_dir("gpu") as storage:
        for i, which in enumerate(order):
            name = f"{which}-{i}"
            wall, rows = item.run_variant(which, data, lrs, a, storage, name, slots)
            walls[which].append(wall)
            starts[which] += item._starts(rows)
            print(f"  [{i}] {which}: wall {wall:.1f} s, starts "
                  f"{', '.join(f'{s:.2f}' for s in item._starts(rows))} s", flush=True)
    for which in variants:
        print(f"{which:12s} wall mean {statistics.fmean(walls[which]):6.1f} s | start -> "
              f"first step median {common.median(starts[which]):5.2f} s, "
              f"max {max(starts[which], default=float('nan')):5.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
