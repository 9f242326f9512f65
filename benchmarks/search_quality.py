"""Search quality: random vs Optuna TPE vs Nevergrad (evolutionary) vs BayesOpt, same budget.

Each searcher is built by itwinai_ray's own ``build_searcher`` (in
``backends/ray/tune_objects.py``) from its YAML short name and driven through Ray Tune's
Searcher API exactly as Tune drives it with one trial at a time (``set_search_properties``,
then ``suggest`` / ``on_trial_complete`` per trial), on cheap analytic functions with a known
optimum, so no cluster is needed and the numbers depend on
the algorithms only. ``random`` samples the same Tune domains with a seeded generator.

For each function, searcher and seed it records the best value found within the budget and
the number of trials needed to come within 1 % of that best value; it prints the mean over
seeds (and each seed's values).

    python benchmarks/search_quality.py                  # 24 trials, seeds 0 1 2
    python benchmarks/search_quality.py --budget 40 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

FUNCTIONS: dict[str, tuple[dict[str, Any], Callable[[dict[str, float]], float], float]] = {}


def branin(c: dict[str, float]) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + cc * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
_H_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
_H_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(c: dict[str, float]) -> float:
    x = [c[f"x{i}"] for i in range(6)]
    return -sum(a * math.exp(-sum(_H_A[i][j] * (x[j] - _H_P[i][j]) ** 2 for j in range(6)))
                for i, a in enumerate(_H_ALPHA))


FUNCTIONS["branin (2-D, min 0.3979)"] = (
    {"x1": {"type": "uniform", "lower": -5, "upper": 10},
     "x2": {"type": "uniform", "lower": 0, "upper": 15}}, branin, 0.397887)
FUNCTIONS["hartmann6 (6-D, min -3.3224)"] = (
    {f"x{i}": {"type": "uniform", "lower": 0, "upper": 1} for i in range(6)}, hartmann6,
    -3.32237)

SEARCHERS: dict[str, Callable[[int], Any]] = {
    "random": lambda seed: "random",
    "optuna-tpe": lambda seed: {"name": "optuna", "sampler": "tpe", "seed": seed},
    "nevergrad-de": lambda seed: {"name": "nevergrad", "optimizer": "TwoPointsDE"},
    "bayesopt": lambda seed: {"name": "bayesopt", "seed": seed},
}


def run_one(spec: Any, space_yaml: dict[str, Any], fn: Callable[[dict[str, float]], float],
            budget: int, seed: int) -> list[float]:
    """Values of the ``budget`` trials, in the order the searcher proposed them."""
    import numpy as np

    from itwinai_ray.backends.ray.tune_objects import build_searcher

    np.random.seed(seed)  # nevergrad's parametrization draws its generator from numpy's
    random.seed(seed)
    searcher, space = build_searcher(spec, "loss", "min", space_yaml, num_samples=budget)
    values = []
    if searcher is None:  # Ray's random generator samples the domains: do the same, seeded
        rng = np.random.default_rng(seed)
        for _ in range(budget):
            values.append(fn({k: float(d.sample(random_state=rng)) for k, d in space.items()}))
        return values
    searcher.set_search_properties("loss", "min", space)
    for i in range(budget):
        config = searcher.suggest(f"t{i}")
        value = fn({k: float(v) for k, v in config.items()})
        searcher.on_trial_complete(f"t{i}", {"loss": value})
        values.append(value)
    return values


def trials_to_reach(values: list[float], fraction: float = 0.01) -> int:
    """1-based index of the first trial within ``fraction`` (relative) of the run's best."""
    best = min(values)
    bound = best + fraction * abs(best)
    running = math.inf
    for i, v in enumerate(values, 1):
        running = min(running, v)
        if running <= bound:
            return i
    return len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=list(SEARCHERS), default=list(SEARCHERS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # searchers' chatter (e.g. "LogUniform dropped")
    warnings.simplefilter("ignore")
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass
    print(f"budget {args.budget} trials, seeds {args.seeds}; best = best value found "
          f"(mean over seeds), to 99% = trials until within 1% of that run's best")
    for fname, (space, fn, optimum) in FUNCTIONS.items():
        print(f"\n{fname}")
        print(f"{'searcher':<14}{'best':>10}{'regret':>10}{'to 99%':>8}{'s/run':>8}   per seed")
        for name in args.only:
            bests, reach, secs = [], [], []
            for seed in args.seeds:
                t0 = time.perf_counter()
                values = run_one(SEARCHERS[name](seed), space, fn, args.budget, seed)
                secs.append(time.perf_counter() - t0)
                bests.append(min(values))
                reach.append(trials_to_reach(values))
            per_seed = ", ".join(f"{b:.4f}@{r}" for b, r in zip(bests, reach))
            print(f"{name:<14}{statistics.mean(bests):>10.4f}"
                  f"{statistics.mean(bests) - optimum:>10.4f}{statistics.mean(reach):>8.1f}"
                  f"{statistics.mean(secs):>8.2f}   {per_seed}")


if __name__ == "__main__":
    main()
