"""Items 1 and 2: wrapper overhead against hand-written Ray Tune + Train V2, trial start latency.

Reuses ``benchmarks/overhead_vs_raw_ray.py`` (``run_ours`` / ``run_raw``: identical work, the
docstring there says how every time is taken). Item 1 runs ours and raw in ABBA order on one
local Ray and compares wall times. Item 2 takes, per trial, trial start -> first training step
(rank 0's clock): for ``num_workers=2`` from item 1's runs (ours against raw), for
``num_workers=1`` (the fast path: the trial process is the worker) from an extra run of ours.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmarks import overhead_vs_raw_ray as ovr
from benchmarks.suite import common
from benchmarks.suite.common import Measurement

NUM_CPUS = 5  # as in overhead_vs_raw_ray.py: 2 trials x 2 workers fit, overcommitted 2 cores
FAST_NUM_CPUS = 2


def _args(trials: int, workers: int, epochs: int) -> argparse.Namespace:
    return argparse.Namespace(trials=trials, workers=workers, epochs=epochs, batch_size=32,
                              hidden=64)


def _lrs(trials: int) -> list[float]:
    import numpy as np

    return [float(f"{v:.3g}") for v in np.geomspace(3e-4, 3e-2, trials)]


def _starts(rows: list[dict[str, Any]]) -> list[float]:
    return [r["t_first_step"] - r["t_trial_start"] for r in rows
            if r.get("t_first_step") is not None and r.get("t_trial_start") is not None]


def run_variant(which: str, data: Any, lrs: list[float], a: argparse.Namespace, storage: str,
                name: str, raw_concurrency: int) -> tuple[float, list[dict[str, Any]]]:
    """One run of ``which`` ("raw", "ours", "ours_nomlflow" or "ours_pooled"): its wall time
    and per-trial rows; raises when a trial failed."""
    if which == "raw":
        wall, rows = ovr.run_raw(data, lrs, a, storage, name, raw_concurrency)
    else:
        wall, rows, _ = ovr.run_ours(data, lrs, a, storage, name,
                                     mlflow=which != "ours_nomlflow",
                                     reuse_actors=which == "ours_pooled")
    errors = sum(r["status"] == "error" for r in rows)
    if errors:
        raise RuntimeError(f"{which}: {errors} trial(s) failed; see {storage}/{name}")
    return wall, rows


def _run_pairs(data: Any, a: argparse.Namespace, repeats: int, storage: str,
               variants: tuple[str, ...] = ("ours", "raw", "ours_nomlflow")) -> dict[str, Any]:
    """``variants``: "ours" is the default (MLflow tracking on); "ours_nomlflow" the same run
    with run_config mlflow: false, i.e. the same work as raw, which tracks nothing;
    "ours_pooled" ours with ``tune_config.reuse_actors: true`` (MLflow on)."""
    from itwinai_ray.backends.ray import driver as ray_backend
    from itwinai_ray.tuning import resources

    lrs = _lrs(a.trials)
    variants = list(variants)
    walls: dict[str, list[float]] = {v: [] for v in variants}
    starts: dict[str, list[float]] = {v: [] for v in variants}
    losses: dict[str, dict[float, float]] = {v: {} for v in variants}
    loads = []
    order: list[str] = []
    for r in range(repeats):  # ABC CBA ...: order and warm-up effects cancel over pairs
        order += variants if r % 2 == 0 else variants[::-1]
    concurrency = resources.max_concurrent_trials(
        resources.trial_need(a.workers, None, False), ray_backend.cluster_capacity())
    raw_conc = min(concurrency, int(NUM_CPUS // (a.workers + ovr.TRIAL_OVERHEAD_CPU)))
    for i, which in enumerate(order):
        name = f"{which}-{a.workers}w-{i}"
        wall, rows = run_variant(which, data, lrs, a, storage, name, raw_conc)
        walls[which].append(wall)
        starts[which] += _starts(rows)
        losses[which].update({r["lr"]: r["loss"] for r in rows if r["loss"] is not None})
        loads.append(common.load1())
        print(f"  [{i}] {which} {a.trials}x{a.workers}w x{a.epochs}ep: wall {wall:.1f} s, "
              f"load {loads[-1]}", flush=True)
    common_lrs = set.intersection(*(set(losses[v]) for v in variants))
    diff = max((abs(losses[v][k] - losses["raw"][k]) for k in common_lrs
                for v in variants if v != "raw"), default=None)
    return {"walls": walls, "starts": starts, "loads": loads, "max_loss_diff": diff,
            "concurrency": concurrency, "raw_concurrency": raw_conc}


def run(quick: bool) -> list[Measurement]:
    import sys

    trials, epochs, repeats = (2, 2, 1) if quick else (8, 5, 2)
    fast_trials = 6 if quick else 8
    common.register_by_value(sys.modules[ovr.__name__])
    data = common.digits_split()
    out: list[Measurement] = []
    with common.ray_session(NUM_CPUS) as t_init, common.scratch_dir("overhead") as storage:
        pairs = _run_pairs(data, _args(trials, 2, epochs), repeats, storage)
    # The fast path on its own Ray sized to the 2 real cores: 2 trials at once, so the first
    # trial of each reused actor pays the torch import ("cold") and the later ones do not.
    with common.ray_session(FAST_NUM_CPUS), common.scratch_dir("overhead1") as storage:
        _, fast_rows, fast_conc = ovr.run_ours(data, _lrs(fast_trials),
                                               _args(fast_trials, 1, 1), storage, "ours-1w")
        fast_load = common.load1()
    w = pairs["walls"]
    ratio = statistics.fmean(w["ours"]) / statistics.fmean(w["raw"])
    setting = f"{trials} trials x 2 workers x {epochs} epochs, {repeats} ABBA pair(s)"
    out.append(Measurement(
        "1 wrapper overhead", "wall ours/raw (MLflow on)", ratio, "<= 1.03", ratio <= 1.03,
        details={"setting": setting, "ours_wall_s": w["ours"], "raw_wall_s": w["raw"],
                 "max_final_val_loss_diff": pairs["max_loss_diff"], "ray_init_s": t_init,
                 "num_cpus": NUM_CPUS, "max_concurrent_trials": pairs["concurrency"],
                 "load1": pairs["loads"]}))
    ratio_off = statistics.fmean(w["ours_nomlflow"]) / statistics.fmean(w["raw"])
    out.append(Measurement(
        "1 wrapper overhead", "wall ours/raw (MLflow off)", ratio_off, "<= 1.03",
        ratio_off <= 1.03, details={"ours_nomlflow_wall_s": w["ours_nomlflow"],
                                    "raw_wall_s": w["raw"]}))
    s_ours, s_raw = pairs["starts"]["ours"], pairs["starts"]["raw"]
    med2, p90_2, raw_med = (common.median(s_ours), common.percentile(s_ours, 90),
                            common.median(s_raw))
    out.append(Measurement(
        "2 trial start (2 workers)", "median start->1st step", med2,
        f"<= raw + 0.5 s (raw {raw_med:.2f} s)", med2 <= raw_med + 0.5, "s",
        details={"p90_s": p90_2, "raw_median_s": raw_med,
                 "raw_p90_s": common.percentile(s_raw, 90), "ours_s": s_ours, "raw_s": s_raw,
                 "setting": setting, "load1": pairs["loads"]}))
    # In trial start order: the first fast_conc trials start fresh processes (cold: import
    # torch), the later ones run in reused trial actors (warm).
    s1 = _starts(sorted(fast_rows, key=lambda r: r.get("t_trial_start") or 0.0))
    cold, warm = s1[:fast_conc], s1[fast_conc:]
    med1, p90_1 = common.median(s1), common.percentile(s1, 90)
    out.append(Measurement(
        "2 trial start (1 worker)", "median start->1st step", med1, "<= 1.5 s", med1 <= 1.5,
        "s", details={"p90_s": p90_1, "per_trial_s": s1, "cold_s": cold, "warm_s": warm,
                      "load1": fast_load,
                      "setting": f"{fast_trials} trials x 1 worker x 1 epoch, "
                                 f"{fast_conc} at once (actors reused)"}))
    out.append(Measurement(
        "2 trial start (1 worker)", "p90 start->1st step", p90_1, "(informational)", None, "s"))
    out.append(Measurement(
        "2 trial start (1 worker)", f"cold (first {fast_conc}) median", common.median(cold),
        "(informational)", None, "s"))
    out.append(Measurement(
        "2 trial start (1 worker)", "warm (reused actor) median", common.median(warm),
        "(informational)", None, "s"))
    out.append(Measurement(
        "2 trial start (2 workers)", "median, MLflow off",
        common.median(pairs["starts"]["ours_nomlflow"]), "(informational)", None, "s",
        details={"ours_nomlflow_s": pairs["starts"]["ours_nomlflow"]}))
    out.append(Measurement(
        "2 trial start (2 workers)", "p90 start->1st step", p90_2,
        f"(raw p90 {common.percentile(s_raw, 90):.2f} s)", None, "s"))
    return out
