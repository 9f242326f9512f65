"""Item 4: in-trial throughput, TorchTrainer against a plain PyTorch loop on the same model.

Reuses ``benchmarks/trainer_overhead.py``: the digits MLP (hidden 256, batch 32), plain loop and
``TorchTrainer.execute`` (the lifecycle each trial worker runs) in ABBA order in one process,
one torch thread; samples/s by this process's CPU time (primary: insensitive to other load on
the shared cores) and by wall time, median over repeats.
"""

from __future__ import annotations

import statistics

from benchmarks import trainer_overhead as to
from benchmarks.suite import common
from benchmarks.suite.common import Measurement


def run(quick: bool) -> list[Measurement]:
    import torch

    from itwinai_ray.examples.digits import DigitsGetter

    epochs, repeats = (5, 6) if quick else (10, 10)
    batch, hidden = 32, 256
    torch.set_num_threads(1)
    dataset = DigitsGetter().execute()
    to.plain_loop(dataset, 1, batch, hidden, 0)  # warm-up
    to.trainer_run(dataset, 1, batch, hidden, 0)
    fns = {"plain": to.plain_loop, "trainer": to.trainer_run}
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "trainer": []}
    for r in range(repeats):
        for which in (("plain", "trainer") if r % 2 == 0 else ("trainer", "plain")):
            runs[which].append(fns[which](dataset, epochs, batch, hidden, r))
    n = len(dataset) * epochs

    def rate(which: str, clock: int) -> float:
        return statistics.median(n / run[clock] for run in runs[which])

    cpu = rate("trainer", 1) / rate("plain", 1)
    wall = rate("trainer", 0) / rate("plain", 0)
    details = {"plain_samples_per_s_cpu": rate("plain", 1),
               "trainer_samples_per_s_cpu": rate("trainer", 1),
               "plain_samples_per_s_wall": rate("plain", 0),
               "trainer_samples_per_s_wall": rate("trainer", 0),
               "setting": f"{epochs} epochs x {repeats} repeats, ABBA", "load1": common.load1()}
    return [Measurement("4 in-trial throughput", "trainer/plain (CPU time)", cpu, ">= 0.95",
                        cpu >= 0.95, details=details),
            Measurement("4 in-trial throughput", "trainer/plain (wall time)", wall, ">= 0.95",
                        wall >= 0.95)]
