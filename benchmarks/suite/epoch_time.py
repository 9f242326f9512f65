"""Item 8 (issue 19): long trials stay as they are: the steady-state epoch time.

2 learning rates x 2 DDP workers x 20 epochs (grid, FIFO, both trials at once on a Ray of 5
logical CPUs), in ABC CBA order: ours (a Train V2 run per trial), hand-written Ray Tune +
Train V2, and ours pooled (``reuse_actors: true``, whose workers wait at each report for
Tune's verdict). Measured: the median of Tune's ``time_this_iter_s`` over epochs 3-20 of
every trial (start-up excluded), each variant over raw's. Target: <= 1.03.
"""

from __future__ import annotations

import json
import os
import sys

from benchmarks import overhead_vs_raw_ray as ovr
from benchmarks.suite import common
from benchmarks.suite import overhead as item
from benchmarks.suite.common import Measurement

TRIALS, WORKERS, EPOCHS = 2, 2, 20
VARIANTS = ("ours", "raw", "ours_pooled")


def _epoch_times(path: str | None) -> list[float]:
    """``time_this_iter_s`` of iterations 3.. of one trial (its result.json)."""
    if not path:
        return []
    with open(os.path.join(path, "result.json")) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [r["time_this_iter_s"] for r in rows if r.get("training_iteration", 0) >= 3]


def run(quick: bool) -> list[Measurement]:
    epochs, repeats = (8, 1) if quick else (EPOCHS, 2)
    common.register_by_value(sys.modules[ovr.__name__])
    data = common.digits_split()
    a = item._args(TRIALS, WORKERS, epochs)
    lrs = item._lrs(TRIALS)
    order = [v for r in range(repeats) for v in (VARIANTS if r % 2 == 0 else VARIANTS[::-1])]
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with common.ray_session(item.NUM_CPUS), common.scratch_dir("epochs") as storage:
        for i, which in enumerate(order):
            name = f"{which}-{i}"
            _, rows = item.run_variant(which, data, lrs, a, storage, name, TRIALS)
            for row in rows:
                times[which] += _epoch_times(row["path"])
            print(f"  [{i}] {which}: epoch median {common.median(times[which]):.3f} s",
                  flush=True)
    raw = common.median(times["raw"])
    setting = (f"{TRIALS} trials x {WORKERS} workers x {epochs} epochs, both at once, "
               f"{'ABC' if repeats == 1 else 'ABC CBA'}, epochs 3.. of every trial")
    out = []
    for which in ("ours", "ours_pooled"):
        ratio = common.median(times[which]) / raw
        out.append(Measurement("8 epoch time (long trials)", f"{which}/raw, median epoch",
                               ratio, "<= 1.03", ratio <= 1.03,
                               details={"setting": setting, "raw_median_s": raw,
                                        f"{which}_median_s": common.median(times[which])}))
    return out
