"""Plots of an HPO experiment, drawn on bare matplotlib Figures (Agg, no pyplot state).

- ``learning_curves``: the metric per iteration for every trial; stopped trials dashed and
  ending in an x, errored trials red, the best trial thick;
- ``parallel_coordinates``: one line per scored trial across the hyperparameters (scaled to
  [0, 1], log axes for log-spread values, categories as positions) and the metric;
- ``importance``: how much each hyperparameter explains the metric: fANOVA (Optuna) when
  there are enough trials, else |Spearman rank correlation|;
- ``pareto``: the Pareto front of a multi-objective run (:mod:`itwinai_ray.tuning.pareto`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from .loading import Experiment

logger = logging.getLogger(__name__)

_DPI = 100
_FANOVA_MIN_TRIALS = 5


def _figure(size: tuple[float, float] = (8, 5)) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def learning_curves(exp: Experiment) -> Any | None:
    """One line per trial with at least one report of the metric."""
    fig = _figure()
    ax = fig.add_subplot()
    best = next((r.trial_id for r in exp.results.ranked() if r.metric is not None), None)
    n = 0
    for row in exp.results.rows:
        points = [(h.get("training_iteration"), h.get(exp.metric))
                  for h in exp.histories.get(row.trial_id, [])]
        points = [(int(x), float(y)) for x, y in points if x is not None and _num(y)]
        if not points:
            continue
        xs, ys = zip(*points)
        style: dict[str, Any] = {"linewidth": 1.2, "alpha": 0.8}
        if row.status == "stopped early":
            style.update(linestyle="--", marker="x", markevery=[len(xs) - 1], alpha=0.6)
        elif row.status == "error":
            style.update(color="tab:red", linestyle=":")
        if row.trial_id == best:
            style.update(linewidth=3, alpha=1.0, color="black", linestyle="-", marker=None)
        ax.plot(xs, ys, label=f"{row.trial_id} ({row.status})", **style)
        n += 1
    if not n:
        return None
    ax.set_xlabel("training iteration (epoch)")
    ax.set_ylabel(f"{exp.metric} ({exp.mode})")
    stopped = sum(r.status == "stopped early" for r in exp.results.rows)
    ax.set_title(f"Learning curves: {n} trials ({stopped} stopped early, dashed; best thick)")
    if n <= 12:
        ax.legend(fontsize=7)
    return fig


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _axis(values: list[Any]) -> tuple[list[float], list[Any], list[str], bool] | None:
    """Scaled positions in [0, 1], tick positions and labels; None for a constant column."""
    distinct = sorted({repr(v) for v in values})
    if len(distinct) < 2:
        return None
    numeric = all(_num(v) for v in values)
    if numeric and len(distinct) <= 6:  # a choice of numbers: one position per value
        levels = sorted(set(values))
        pos = {v: i / (len(levels) - 1) for i, v in enumerate(levels)}
        return [pos[v] for v in values], list(pos.values()), [f"{v:.4g}" for v in levels], False
    if numeric:
        lo, hi = min(values), max(values)
        log = lo > 0 and hi / lo > 100
        f = (lambda v: math.log10(v)) if log else (lambda v: float(v))
        a, b = f(lo), f(hi)
        scaled = [(f(v) - a) / (b - a) for v in values]
        ticks = [0.0, 0.5, 1.0]
        labels = [f"{(10 ** (a + t * (b - a)) if log else a + t * (b - a)):.3g}" for t in ticks]
        return scaled, ticks, labels, log
    cats = sorted({str(v) for v in values})
    pos = {c: i / (len(cats) - 1) for i, c in enumerate(cats)}
    return [pos[str(v)] for v in values], list(pos.values()), cats, False


def parallel_coordinates(exp: Experiment) -> Any | None:
    """One line per scored trial; axes: the varying hyperparameters, then the metric."""
    scored = [r for r in exp.results.ranked() if r.metric is not None]
    if len(scored) < 2:
        return None
    columns: list[tuple[str, Any]] = []
    for key in exp.param_keys:
        axis = _axis([r.config.get(key) for r in scored])
        if axis is not None:
            columns.append((key, axis))
    metric_axis = _axis([r.metric for r in scored])
    if metric_axis is None:
        metric_axis = ([0.5] * len(scored), [0.5], [f"{scored[0].metric:.3g}"], False)
    columns.append((exp.metric, metric_axis))
    from matplotlib import colormaps

    fig = _figure((max(6.0, 2.0 * len(columns)), 5))
    ax = fig.add_subplot()
    cmap = colormaps["viridis_r" if exp.mode == "min" else "viridis"]
    metric_pos = metric_axis[0]
    for i in range(len(scored)):
        ys = [axis[0][i] for _, axis in columns]
        ax.plot(range(len(columns)), ys, color=cmap(metric_pos[i]), alpha=0.8,
                linewidth=2.5 if i == 0 else 1.2)
    ax.vlines(range(len(columns)), 0, 1, color="gray", linewidth=0.8)  # not in ax.lines
    for x, (_name, (_, ticks, labels, _log)) in enumerate(columns):
        for t, label in zip(ticks, labels):
            ax.annotate(label, (x, t), fontsize=7, xytext=(3, 0), textcoords="offset points")
    ax.set_xticks(range(len(columns)),
                  [f"{n} (log)" if c[3] else n for n, c in columns], rotation=15)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(columns) - 0.6)
    ax.set_title(f"{len(scored)} trials: hyperparameters vs {exp.metric} (best thick; "
                 f"yellow = better)")
    return fig


def importances(exp: Experiment) -> tuple[dict[str, float], str]:
    """(hyperparameter -> importance summing to 1, method name); empty when not computable."""
    scored = [r for r in exp.results.rows if r.metric is not None]
    keys = [k for k in exp.param_keys if len({repr(r.config.get(k)) for r in scored}) > 1]
    if len(scored) < 3 or not keys:
        return {}, ""
    if len(scored) >= _FANOVA_MIN_TRIALS:
        try:
            return _fanova(scored, keys, exp.mode), "fANOVA (optuna)"
        except Exception:  # noqa: BLE001 - optuna missing or fANOVA failing: fall back
            logger.debug("fANOVA failed; using rank correlation.", exc_info=True)
    return _spearman(scored, keys), "|Spearman rank correlation|"


def _fanova(scored: list[Any], keys: list[str], mode: str) -> dict[str, float]:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {}
    for key in keys:
        values = [r.config.get(key) for r in scored]
        if all(_num(v) for v in values):
            lo, hi = float(min(values)), float(max(values))
            dists[key] = FloatDistribution(lo, hi, log=lo > 0 and hi / lo > 100)
        else:
            dists[key] = CategoricalDistribution(sorted({str(v) for v in values}))
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    for r in scored:
        params = {k: (float(r.config[k]) if isinstance(dists[k], FloatDistribution)
                      else str(r.config.get(k))) for k in keys}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=r.metric))
    out = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    return {k: float(v) for k, v in out.items()}


def _ranks(values: list[Any]) -> list[float]:
    keyed = [(v if _num(v) else str(v)) for v in values]
    order = sorted(range(len(keyed)), key=lambda i: keyed[i])
    ranks = [0.0] * len(keyed)
    for pos, i in enumerate(order):
        ranks[i] = float(pos)
    return ranks


def _spearman(scored: list[Any], keys: list[str]) -> dict[str, float]:
    y = _ranks([r.metric for r in scored])
    raw = {}
    for key in keys:
        x = _ranks([r.config.get(key) for r in scored])
        mx, my = sum(x) / len(x), sum(y) / len(y)
        cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
        sx = math.sqrt(sum((a - mx) ** 2 for a in x))
        sy = math.sqrt(sum((b - my) ** 2 for b in y))
        raw[key] = abs(cov / (sx * sy)) if sx and sy else 0.0
    total = sum(raw.values()) or 1.0
    return dict(sorted(((k, v / total) for k, v in raw.items()), key=lambda kv: -kv[1]))


def importance(exp: Experiment) -> Any | None:
    """Horizontal bars, most important first."""
    values, method = importances(exp)
    if not values:
        return None
    fig = _figure((7, 1.2 + 0.5 * len(values)))
    ax = fig.add_subplot()
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance for {exp.metric} ({method})")
    ax.set_xlim(0, 1)
    ax.set_title(f"Hyperparameter importance ({sum(r.metric is not None for r in exp.results.rows)}"
                 f" scored trials)")
    return fig


def pareto(exp: Experiment) -> Any | None:
    if len(exp.results.objectives) < 2:
        return None
    from ..tuning.pareto import plot_pareto

    try:
        return plot_pareto(exp.results)
    except ValueError as exc:
        logger.warning("No Pareto plot: %s", exc)
        return None


PLOTS = {"learning_curves": learning_curves, "parallel_coordinates": parallel_coordinates,
         "importance": importance, "pareto": pareto}


def figures(exp: Experiment) -> dict[str, Any]:
    """Every plot that applies to this experiment, by name (unsaved Figures)."""
    out = {}
    for name, make in PLOTS.items():
        fig = make(exp)
        if fig is not None:
            out[name] = fig
    return out


def save(figs: dict[str, Any], directory: str | Path) -> dict[str, Path]:
    """Write each figure as ``<directory>/<name>.png``; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, fig in figs.items():
        paths[name] = directory / f"{name}.png"
        fig.savefig(paths[name], dpi=_DPI)
    return paths
