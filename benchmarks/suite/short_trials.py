"""Item 7 (issue 19): short trials, where start-up and tear-down are most of the time.

8 learning rates x 2 DDP workers x 1 epoch (grid, FIFO), ours (MLflow on), hand-written Ray
Tune + Train V2, ours (MLflow off), ours pooled (``reuse_actors: true``, MLflow on), in ABCD
DCBA order on one local Ray of 5 logical CPUs (2
trials at once): the same runs as item 1 (``overhead._run_pairs``), with trials so short that
the wall time is start-up and tear-down. Target of issue 19: ours / raw <= 0.5.
"""

from __future__ import annotations

import statistics
import sys

from benchmarks import overhead_vs_raw_ray as ovr
from benchmarks.suite import common
from benchmarks.suite import overhead as item
from benchmarks.suite.common import Measurement

TRIALS, WORKERS, EPOCHS = 8, 2, 1
VARIANTS = ("ours", "raw", "ours_nomlflow", "ours_pooled")


def run(quick: bool) -> list[Measurement]:
    trials, repeats = (4, 1) if quick else (TRIALS, 2)
    common.register_by_value(sys.modules[ovr.__name__])
    data = common.digits_split()
    with common.ray_session(item.NUM_CPUS), common.scratch_dir("short") as storage:
        pairs = item._run_pairs(data, item._args(trials, WORKERS, EPOCHS), repeats, storage,
                                VARIANTS)
    walls, starts = pairs["walls"], pairs["starts"]
    raw = statistics.fmean(walls["raw"])
    setting = (f"{trials} trials x {WORKERS} workers x {EPOCHS} epoch, grid, FIFO, "
               f"{'ABCD' if repeats == 1 else 'ABCD DCBA'}, {item.NUM_CPUS} logical CPUs")
    details = {"setting": setting, "load1": pairs["loads"],
               "max_final_val_loss_diff": pairs["max_loss_diff"],
               **{f"{v}_wall_s": walls[v] for v in VARIANTS},
               **{f"starts_{v}_s": starts[v] for v in VARIANTS}}
    out = []
    for variant, label in (("ours", "ours/raw (MLflow on)"),
                           ("ours_nomlflow", "ours/raw (MLflow off)"),
                           ("ours_pooled", "ours pooled/raw (MLflow on)")):
        ratio = statistics.fmean(walls[variant]) / raw
        out.append(Measurement("7 short trials", f"wall {label}", ratio, "<= 0.5",
                               ratio <= 0.5, details=details if not out else {}))
    for variant in VARIANTS:  # issue 19: median 2-worker trial start -> first step <= 3 s
        median = common.median(starts[variant])
        out.append(Measurement("7 short trials", f"start -> first step, {variant} (median)",
                               median, "<= 3 s" if variant != "raw" else "(reference)",
                               median <= 3.0 if variant != "raw" else None, "s"))
    return out
