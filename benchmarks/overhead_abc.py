"""Item 1 with two passes in ABC CBA order: ours (MLflow on), raw, ours (MLflow off).

The suite's quick item 1 makes one ABC pass, in which the first run also pays the first-run
warm-up; this script runs each variant twice in mirrored order (quick sizes: 2 trials x 2
workers x 2 epochs), so order effects cancel. Run it alone on the machine:

    python -m benchmarks.overhead_abc
"""

from __future__ import annotations

import statistics
import sys

from benchmarks import overhead_vs_raw_ray as ovr
from benchmarks.suite import common
from benchmarks.suite import overhead as item


def main() -> None:
    common.register_by_value(sys.modules[ovr.__name__])
    data = common.digits_split()
    with common.ray_session(item.NUM_CPUS), common.scratch_dir("overhead") as storage:
        pairs = item._run_pairs(data, item._args(2, 2, 2), 2, storage)
    walls = pairs["walls"]
    for name, values in walls.items():
        print(f"{name:14s} walls {[round(v, 1) for v in values]} mean "
              f"{statistics.fmean(values):.1f} s; starts "
              f"{[round(v, 1) for v in pairs['starts'][name]]}")
    raw = statistics.fmean(walls["raw"])
    print(f"ratio ours/raw: MLflow on {statistics.fmean(walls['ours']) / raw:.3f}, "
          f"MLflow off {statistics.fmean(walls['ours_nomlflow']) / raw:.3f} (target <= 1.03); "
          f"max final val loss diff {pairs['max_loss_diff']}; load {pairs['loads']}")


if __name__ == "__main__":
    main()
