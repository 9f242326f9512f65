"""What every suite item shares: the result record, the local Ray session, statistics."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Measurement:
    """One row of the suite table."""

    item: str  # e.g. "1 wrapper overhead"
    name: str  # what was measured, e.g. "wall ratio ours/raw"
    value: float | None
    target: str  # human-readable, e.g. "<= 1.03"
    met: bool | None  # None: no target (informational)
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def measured_text(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "n/a"
        return f"{self.value:.3g}{(' ' + self.unit) if self.unit else ''}"


def load1() -> float:
    """The 1-min load average (noted with every result)."""
    return round(os.getloadavg()[0], 2)


def median(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(vals) if vals else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of the finite values."""
    vals = sorted(v for v in values if v is not None and not math.isnan(v))
    if not vals:
        return float("nan")
    pos = (len(vals) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def register_by_value(*modules: Any) -> None:
    """Ray workers unpickle the benchmark classes by value (``benchmarks`` is not installed)."""
    import ray.cloudpickle

    for module in modules:
        ray.cloudpickle.register_pickle_by_value(module)


@contextlib.contextmanager
def ray_session(num_cpus: int) -> Iterator[float]:
    """A fresh local Ray (no dashboard, one torch thread per process); yields ``ray.init``'s s.

    The same call as ``overhead_vs_raw_ray.py``. Retried: on a busy 2-core box the raylet may
    miss its start window.
    """
    import ray

    t0 = time.time()
    for attempt in range(3):
        try:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}, log_to_driver=False)
            break
        except Exception as exc:  # noqa: BLE001 - retried, then re-raised
            ray.shutdown()
            if attempt == 2:
                raise
            print(f"ray.init failed ({exc}); retrying", file=sys.stderr, flush=True)
    try:
        yield time.time() - t0
    finally:
        ray.shutdown()


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=f"bench-{prefix}-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def digits_split() -> tuple[Any, Any]:
    """The digits train/validation split every Ray item uses (same as overhead_vs_raw_ray)."""
    from itwinai_ray.components import DataSplitter
    from itwinai_ray.examples.digits import DigitsGetter

    train, val, _ = DataSplitter(0.6, 0.2, rnd_seed=1).execute(DigitsGetter().execute())
    return train, val


def quiet_run_config(storage: str, name: str, **extra: Any) -> dict[str, Any]:
    """run_config for suite experiments: no live progress view (it would garble the table)."""
    return {"storage_path": storage, "name": name, "progress": False, **extra}
