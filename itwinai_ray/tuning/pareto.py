"""Pareto front of a multi-objective search, and its plot. Imports neither Ray nor matplotlib
until a plot is drawn.

A trial is on the front when no other trial is at least as good on every metric and strictly
better on one (``mode`` per metric: ``min`` or ``max``). Trials missing a finite value of
any metric are left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .scope import finite as _finite


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """``a`` is at least as good as ``b`` on every metric and better on one."""
    signs = [1.0 if m == "min" else -1.0 for m in modes]
    at_least = all(s * x <= s * y for s, x, y in zip(signs, a, b))
    better = any(s * x < s * y for s, x, y in zip(signs, a, b))
    return at_least and better


def pareto_indices(points: Sequence[Sequence[Any]], modes: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order. Points with a missing or
    non-finite value are never on the front."""
    for m in modes:
        if m not in ("min", "max"):
            raise ValueError(f"mode is {m!r}, but must be 'min' or 'max'.")
    clean = {i: [_finite(v) for v in p] for i, p in enumerate(points)}
    valid = {i: p for i, p in clean.items() if len(p) == len(modes) and None not in p}
    return [i for i, p in valid.items()
            if not any(dominates(q, p, modes) for j, q in valid.items() if j != i)]


def _objectives_of(source: Any) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(trials as dicts with their metric values, objectives) from results or results.json."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        source = json.loads((path / "results.json" if path.is_dir() else path).read_text())
    if isinstance(source, Mapping):  # a loaded results.json
        objectives = [tuple(o) for o in source.get("objectives") or []]
        return list(source.get("trials") or []), objectives  # type: ignore[return-value]
    objectives = list(getattr(source, "objectives", []) or [])
    trials = [{"trial_id": r.trial_id, **r.metrics, **r.config} for r in source.rows]
    return trials, objectives


def plot_pareto(source: Any, path: str | Path | None = None,
                metrics: Sequence[str] | None = None, ax: Any = None,
                title: str | None = None) -> Any:
    """Scatter of every trial on two metrics, the Pareto front highlighted and joined.

    Args:
        source: an :class:`~itwinai_ray.tuning.results.HPOResults`, a ``results.json``
            written by an HPO run, its parsed dict, or the experiment directory holding it.
        path: write the figure there (PNG, PDF, SVG by suffix) and return the path.
        metrics: the two metrics to plot (default: the first two tuned objectives).
        ax: draw on this matplotlib Axes instead of a new figure.
        title: the plot title (default: names the front's size).

    Returns:
        ``path`` when given, else the matplotlib Figure.

    Raises:
        ValueError: fewer than two objectives to plot, or no trial has both values.
    """
    trials, objectives = _objectives_of(source)
    modes_by_name = dict(objectives)
    names = list(metrics) if metrics else [name for name, _ in objectives][:2]
    if len(names) != 2:
        raise ValueError(f"A Pareto plot needs two metrics; this run tuned {objectives or 'one'}. "
                         f"Pass metrics=[a, b].")
    modes = [modes_by_name.get(n, "min") for n in names]
    points = [[_finite(t.get(n)) for n in names] for t in trials]
    shown = [i for i, p in enumerate(points) if None not in p]
    if not shown:
        raise ValueError(f"No trial reported finite values of both {names[0]!r} and "
                         f"{names[1]!r}.")
    front = set(pareto_indices(points, modes))

    fig = None
    if ax is None:  # a bare Figure: no pyplot, no GUI backend, no global state
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4.5))
        ax = fig.add_subplot()
    others = [i for i in shown if i not in front]
    ax.scatter([points[i][0] for i in others], [points[i][1] for i in others],
               c="tab:gray", alpha=0.6, label="trials")
    ordered = sorted(front, key=lambda i: points[i][0])
    ax.plot([points[i][0] for i in ordered], [points[i][1] for i in ordered], "o-",
            c="tab:red", label=f"Pareto front ({len(front)})")
    for i in ordered:
        label = str(trials[i].get("trial_id", i))
        ax.annotate(label[-8:], (points[i][0], points[i][1]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{names[0]} ({modes[0]})")
    ax.set_ylabel(f"{names[1]} ({modes[1]})")
    ax.set_title(title or f"{len(shown)} trials, {len(front)} on the Pareto front")
    ax.legend()
    fig = fig or ax.figure
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=120)
    return path


__all__ = ["dominates", "pareto_indices", "plot_pareto"]
