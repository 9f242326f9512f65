"""Item 7 (issue 19): short trials, where start-up and tear-down are most of the time.

8 learning rates x 2 DDP workers x 1 epoch (grid, FIFO), ours (MLflow on), hand-written Ray
Tune + Train V2, ours (MLflow off), in ABC CBA order on one local Ray of 5 logical CPUs (2
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


def run(quick: bool) -> list[Measurement]:
    trials, repeats = (4, 1) if quick else (TRIALS, 2)
    common.register_by_value(sys.modules[ovr.__name__])
    data = common.digits_split()
    with common.ray_session(item.NUM_CPUS), common.scratch_dir("short") as storage:
        pairs = item._run_pairs(data, item._args(trials, WORKERS, EPOCHS), repeats, storage)
    walls = pairs["walls"]
    raw = statistics.fmean(walls["raw"])
    ratio = statistics.fmean(walls["ours"]) / raw
    setting = (f"{trials} trials x {WORKERS} workers x {EPOCHS} epoch, grid, FIFO, "
               f"{'ABC' if repeats == 1 else 'ABC CBA'}, {item.NUM_CPUS} logical CPUs")
    details = {"setting": setting, "ours_wall_s": walls["ours"], "raw_wall_s": walls["raw"],
               "ours_nomlflow_wall_s": walls["ours_nomlflow"], "load1": pairs["loads"],
               "starts_ours_s": pairs["starts"]["ours"], "starts_raw_s": pairs["starts"]["raw"],
               "max_final_val_loss_diff": pairs["max_loss_diff"]}
    ratio_off = statistics.fmean(walls["ours_nomlflow"]) / raw
    return [
        Measurement("7 short trials", "wall ours/raw (MLflow on)", ratio, "<= 0.5",
                    ratio <= 0.5, details=details),
        Measurement("7 short trials", "wall ours/raw (MLflow off)", ratio_off, "<= 0.5",
                    ratio_off <= 0.5),
    ]
