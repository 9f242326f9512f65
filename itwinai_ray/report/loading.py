"""Read an HPO experiment from its directory alone: finished, interrupted or still running.

Sources, all written by Ray Tune or by itwinai_ray into ``storage_path/name``:

- ``itwinai_ray.json`` (our run metadata: metric, mode, search-space keys, max iterations,
  MLflow store); else ``results.json`` (metric, mode);
- the newest ``experiment_state-*.json`` (each trial's status and directory);
- each trial directory: ``params.json`` (sampled config), ``result.json`` (one JSON line per
  report: the learning curve), ``error.txt``, ``checkpoint_*``.

Nothing here imports Ray, so ``itwinai-ray results`` works on a login node.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..tuning.progress import end_state
from ..tuning.results import HPOResults, TrialRow, read_history
from ..tuning.saved_state import STATE_GLOB, trial_states
from ..tuning.scope import Scope

logger = logging.getLogger(__name__)

META_FILE = "itwinai_ray.json"
#: Tune trial status -> our status, for trials that did not complete.
_UNFINISHED = {"RUNNING": "unfinished", "PAUSED": "unfinished", "PENDING": "pending"}


@dataclass
class Experiment:
    """An experiment as read from disk: its results and each trial's learning curve."""

    path: Path
    results: HPOResults
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    param_keys: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.results.metric

    @property
    def mode(self) -> str:
        return self.results.mode


def is_experiment_dir(path: Path) -> bool:
    """True when ``path`` holds a Tune experiment (state file, tuner.pkl or trial dirs)."""
    if not path.is_dir():
        return False
    if (path / META_FILE).is_file() or (path / "tuner.pkl").is_file():
        return True
    if any(path.glob(STATE_GLOB)):
        return True
    return any((d / "params.json").is_file() for d in path.iterdir() if d.is_dir())


def _not_an_experiment(path: Path) -> ConfigurationError:
    if not path.exists():
        return ConfigurationError(f"Experiment directory '{path}' does not exist. Give the "
                                  f"directory storage_path/name of an HPO run.")
    inside = sorted(d for d in path.iterdir() if d.is_dir() and is_experiment_dir(d)) \
        if path.is_dir() else []
    hint = (f" It contains the experiment(s): {', '.join(str(d) for d in inside[:5])}."
            if inside else " Give the directory storage_path/name of an HPO run (it holds "
                           "experiment_state-*.json, tuner.pkl and one directory per trial).")
    return ConfigurationError(f"'{path}' is not a Ray Tune experiment directory.{hint}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _metric_mode(path: Path, meta: dict[str, Any], metric: str | None,
                 mode: str | None) -> tuple[Any, Any]:
    saved = _read_json(path / "results.json") or {}
    metric = metric or meta.get("metric") or saved.get("objectives") or saved.get("metric")
    if isinstance(metric, list) and metric and isinstance(metric[0], list):  # objectives
        mode = mode or [m for _, m in metric]
        metric = [n for n, _ in metric]
    mode = mode or meta.get("mode") or saved.get("mode")
    if not metric:
        raise ConfigurationError(
            f"Cannot tell which metric experiment '{path}' optimised (no {META_FILE} or "
            f"results.json): pass --metric NAME --mode min|max.")
    return metric, mode or "min"


def _error_line(trial_dir: Path) -> tuple[str | None, str | None]:
    try:
        text = (trial_dir / "error.txt").read_text()
    except OSError:
        return None, None
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1][:500] if lines else "error"), text[-20_000:]


def _latest_checkpoint(trial_dir: Path) -> str | None:
    ckpts = sorted(trial_dir.glob("checkpoint_*"))
    return str(ckpts[-1]) if ckpts else None


def load_experiment(path: str | Path, metric: str | None = None,
                    mode: str | None = None) -> Experiment:
    """Read the experiment at ``path`` (``storage_path/name``).

    Raises:
        ConfigurationError: ``path`` is not an experiment directory, or its metric is unknown.
    """
    path = Path(path).expanduser().resolve()
    if not is_experiment_dir(path):
        raise _not_an_experiment(path)
    meta = _read_json(path / META_FILE) or {}
    metric_, mode_ = _metric_mode(path, meta, metric, mode)
    metrics = metric_ if isinstance(metric_, list) else [metric_]
    modes = mode_ if isinstance(mode_, list) else [mode_] * len(metrics)
    states = trial_states(path)
    scope = Scope.parse(meta.get("scope"))  # older experiments: the default
    trial_dirs = sorted(d for d in path.iterdir()
                        if d.is_dir() and ((d / "params.json").is_file() or d.name in states))
    histories = {d.name: read_history(d) for d in trial_dirs}
    max_iter = meta.get("max_iterations")
    param_keys = list(meta.get("param_keys") or [])
    rows = []
    by_id: dict[str, list[dict[str, Any]]] = {}
    for d in trial_dirs:
        history = histories[d.name]
        last = history[-1] if history else {}
        trial_id, tune_status = states.get(d.name, (str(last.get("trial_id") or d.name), ""))
        config = _read_json(d / "params.json") or {}
        if param_keys:
            config = {k: config.get(k) for k in param_keys}
        error, traceback = _error_line(d)
        epochs = int(last.get("training_iteration", 0) or 0)
        if tune_status == "ERROR" or (error and tune_status != "TERMINATED"):
            status = "error"
        elif tune_status in _UNFINISHED:
            status = _UNFINISHED[tune_status]
        elif epochs == 0 and tune_status == "TERMINATED":
            status = "not started"  # the experiment ended first (fail_fast, time budget)
        elif not tune_status and not last.get("done"):
            status = "unfinished"  # no state file, and it did not end
        else:
            ended = end_state(bool(last.get("done")), epochs, max_iter)
            status = "stopped early" if ended == "stopped" else "finished"
        by_id[trial_id] = history
        rows.append(TrialRow.scored(
            history, metrics[0], modes[0], scope, str(d),
            trial_id=trial_id, config=config, epochs=epochs, status=status,
            checkpoint=_latest_checkpoint(d),
            metrics={k: v for k, v in last.items() if isinstance(v, (int, float, str))},
            error=error, traceback=traceback))
    objectives = list(zip(metrics, modes)) if len(metrics) > 1 else []
    results = HPOResults(metric=metrics[0], mode=modes[0], rows=rows, scope=str(scope),
                         experiment_path=str(path), max_epochs=max_iter, objectives=objectives)
    results.rows = results.ranked()
    keys = param_keys or sorted({k for r in rows for k in r.config})
    return Experiment(path=path, results=results, histories=by_id, meta=meta, param_keys=keys)


PIPELINE_FILE = "pipeline.yaml"
_PIPE_KEY_PREFIX = "# itwinai-ray pipe_key: "


def save_pipeline_source(experiment_dir: str | Path, config: dict[str, Any],
                         pipe_key: str) -> Path:
    """Save the pipeline YAML of an HPO run (``pipeline.yaml``, pipe key in its first line)."""
    import yaml

    from .._yaml import yaml_safe

    path = Path(experiment_dir) / PIPELINE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{_PIPE_KEY_PREFIX}{pipe_key}\n"
                    + yaml.safe_dump(yaml_safe(config), sort_keys=False))
    return path


def pipeline_source_key(path: str | Path) -> str | None:
    """The pipe key saved in the first line of a ``pipeline.yaml``, if any."""
    try:
        with open(path) as f:
            first = f.readline()
    except OSError:
        return None
    return first[len(_PIPE_KEY_PREFIX):].strip() or None if first.startswith(
        _PIPE_KEY_PREFIX) else None
