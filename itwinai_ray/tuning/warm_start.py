"""Warm start: seed a new experiment's searcher with an earlier experiment's results.

``tune_config.warm_start: <experiment dir or results.json>`` gives the searcher the earlier
trials' configurations and scores as already evaluated (Ray's ``points_to_evaluate`` +
``evaluated_rewards``, which Optuna adds to its study as completed trials), for example after
a model change. Only searchers that learn from such results take it (:data:`SEARCHERS`).

The earlier trials are fitted to the new search space, each change said in one line:

- keys that are not in the new space are dropped;
- a trial without a value for a key of the new space is skipped (the searcher needs every key);
- numbers outside the new bounds are clipped to them; a category that the new space does
  not have skips the trial;
- trials without a finite score (errored, not started) are skipped.

No Ray import here.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

logger = logging.getLogger(__name__)

#: Searchers that take earlier results (Ray's ``evaluated_rewards``).
SEARCHERS = ("optuna", "hebo")
#: Columns of a results.json trial row that are not sampled values.
_NOT_CONFIG = {"rank", "trial_id", "best", "best_epoch", "last", "epochs", "status"}


@dataclass
class WarmStart:
    """The earlier trials, fitted to the new space: what the searcher is given."""

    points: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def _results_file(path: str | Path) -> Path:
    path = Path(path).expanduser()
    found = path / "results.json" if path.is_dir() else path
    if not found.is_file():
        raise ConfigurationError(
            f"tune_config.warm_start is {str(path)!r}, but {found} does not exist: give an "
            f"earlier experiment's directory (storage_path/name) or its results.json.")
    return found


def read_earlier(path: str | Path, metric: str, mode: str) -> list[tuple[dict, float]]:
    """``(config, score)`` of every earlier trial with a finite score of ``metric``."""
    found = _results_file(path)
    try:
        data = json.loads(found.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"tune_config.warm_start: {found} is not readable JSON "
                                 f"({exc}); rebuild it with `itwinai-ray results`.") from exc
    if (data.get("metric"), data.get("mode")) != (metric, mode):
        raise ConfigurationError(
            f"tune_config.warm_start: the earlier experiment was ranked by "
            f"{data.get('metric')!r} ({data.get('mode')}), this one by {metric!r} ({mode}); "
            f"its scores cannot seed this search.")
    reserved = _NOT_CONFIG | {metric} | {m for m, _ in data.get("objectives") or []}
    out = []
    for row in data.get("trials") or []:
        score = row.get(metric)
        if isinstance(score, (int, float)) and math.isfinite(score):
            out.append(({k: v for k, v in row.items() if k not in reserved}, float(score)))
    return out


def _fit_value(key: str, value: Any, entry: Mapping[str, Any]) -> tuple[Any, str | None]:
    """``value`` fitted to the new space's ``entry``: (value or None to skip, notice)."""
    if not isinstance(entry, Mapping):  # a Ray domain built in Python: left to the searcher
        return value, None
    kind = entry.get("type", "grid_search" if "grid_search" in entry else None)
    if kind in ("choice", "grid_search"):
        options = list(entry.get("categories") or entry.get("values")
                       or entry.get("grid_search") or [])
        return (value, None) if value in options else (
            None, f"{key}={value!r} is not one of the new {options}")
    if not isinstance(value, (int, float)) or "lower" not in entry:
        return value, None
    upper = entry["upper"] - 1 if kind == "randint" else entry["upper"]  # exclusive there
    clipped = min(max(value, entry["lower"]), upper)
    if clipped != value:
        return clipped, f"{key}={value!r} clipped to {clipped!r} (new bounds)"
    return value, None


def fit_to_space(earlier: list[tuple[dict, float]], space: Mapping[str, Any]) -> WarmStart:
    """The earlier trials as points of ``space`` (YAML spec: key -> ``{type: ...}``)."""
    out = WarmStart()
    dropped = sorted({k for config, _ in earlier for k in config} - set(space))
    if dropped:
        out.notices.append(f"warm start: dropped key(s) {dropped}: not in the new search space")
    for config, score in earlier:
        point, skip = {}, None
        for key, entry in space.items():
            if key not in config:
                skip = f"it has no value for the new key {key!r}"
                break
            value, notice = _fit_value(key, config[key], entry)
            if value is None:
                skip = notice
                break
            if notice:
                out.notices.append(f"warm start: {notice}")
            point[key] = value
        if skip:
            out.notices.append(f"warm start: skipped an earlier trial: {skip}")
        else:
            out.points.append(point)
            out.rewards.append(score)
    return out


def apply(search_alg: Any, warm: WarmStart) -> dict[str, Any]:
    """The searcher spec with the earlier points and scores added."""
    if isinstance(search_alg, str):
        spec: dict[str, Any] = {"name": search_alg}
    elif isinstance(search_alg, Mapping) and "name" in search_alg:
        spec = dict(search_alg)
    else:
        spec = {"name": str(search_alg or "random")}
    if spec["name"] not in SEARCHERS:
        raise ConfigurationError(
            f"tune_config.warm_start needs a searcher that learns from earlier results "
            f"({' or '.join(SEARCHERS)}), but search_alg is {spec['name']!r}. Use "
            f"search_alg: optuna, or drop warm_start.")
    if spec.get("points_to_evaluate") or spec.get("evaluated_rewards"):
        raise ConfigurationError("tune_config.warm_start and search_alg's points_to_evaluate/"
                                 "evaluated_rewards both give earlier points: keep one.")
    return {**spec, "points_to_evaluate": warm.points, "evaluated_rewards": warm.rewards}


def prepare(path: str | Path, search_alg: Any, metric: Any, mode: Any,
            space: Mapping[str, Any]) -> dict[str, Any]:
    """Read, fit and apply a warm start; log what changed; return the searcher spec."""
    if isinstance(metric, list):
        raise ConfigurationError("tune_config.warm_start takes one metric, but metric is "
                                 f"{metric}: give one metric, or drop warm_start.")
    warm = fit_to_space(read_earlier(path, metric, mode), space)
    for notice in warm.notices:
        logger.warning("%s", notice)
    logger.info("Warm start: the searcher starts from %d earlier trials of %s.",
                len(warm.points), path)
    return apply(search_alg, warm)
