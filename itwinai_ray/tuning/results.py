"""HPO results: the best trial, a ranked per-trial table, and the best config as YAML.

:class:`HPOResults` is built from a Ray Tune ``ResultGrid`` through its public attributes
(``metrics``, ``config``, ``checkpoint``, ``error``, ``path``); it holds plain data only, so it
pickles, prints and serialises without Ray.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._yaml import yaml_safe
from .objective import TunedMetrics
from .scope import DEFAULT_SCOPE, Scope, score_history
from .scope import finite as _finite

logger = logging.getLogger(__name__)

#: Tune names a trial's directory ``<trainable>_<trial id>_<index>_<values>_<date>``.
_TRIAL_ID_IN_DIR = re.compile(r"_([0-9a-f]{5}_\d{5})_")


def _trial_id(path: Any, metrics: Mapping[str, Any]) -> str:
    """The trial's id from its directory name: a PBT-exploited trial's last metrics may be
    the cloned trial's (``trial_id`` included), its directory is its own."""
    name = Path(str(path)).name
    found = _TRIAL_ID_IN_DIR.search(name)
    if found:
        return found.group(1)
    return str(metrics.get("trial_id", name))


@dataclass
class TrialRow:
    """One trial: its sampled values, its metric, how far it ran and how it ended."""

    trial_id: str
    config: dict[str, Any]
    metric: float | None
    epochs: int
    status: str  # "finished", "stopped early", "error", "not started" or "interrupted"
    checkpoint: str | None
    path: str | None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # "ExceptionType: message" (one line)
    traceback: str | None = None  # the trial's full error text, with the remote traceback
    best: float | None = None  # the trial's best report of the metric, at best_epoch
    best_epoch: int | None = None
    last: float | None = None  # its last report of the metric

    def logs(self) -> str:
        """Where to look: the trial's error.txt and worker logs, or its directory."""
        if not self.path:
            return "-"
        trial = Path(self.path)
        files = [p.name for p in (trial / "error.txt", trial / "worker-0.log") if p.is_file()]
        if not files:
            return str(trial)
        more = ", worker-<rank>.log" if "worker-0.log" in files else ""
        return f"{trial}/{files[0]}{more}"

    @classmethod
    def scored(cls, history: list[dict[str, Any]], metric: str, mode: str, scope: Scope,
               trial_dir: str | None, **fields: Any) -> TrialRow:
        """A row whose ``metric`` is the scope's value of ``history`` (its reports), and whose
        checkpoint is the best report's under scope ``best`` (else the latest)."""
        score = score_history(history, metric, mode, scope)
        checkpoint = fields.pop("checkpoint", None)
        if scope.kind == "best" and score.best_checkpoint and trial_dir:
            best_dir = Path(trial_dir) / score.best_checkpoint
            checkpoint = str(best_dir) if best_dir.is_dir() else checkpoint
        return cls(metric=score.value, best=score.best, best_epoch=score.best_epoch,
                   last=score.last, checkpoint=checkpoint, path=trial_dir, **fields)


def read_history(trial_dir: Path) -> list[dict[str, Any]]:
    """Every report of a trial (its ``result.json``); a cut-off last line is skipped."""
    rows = []
    try:
        lines = (trial_dir / "result.json").read_text().splitlines()
    except OSError:
        return rows
    for line in lines:
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                logger.debug("Skipping an unreadable line of %s/result.json", trial_dir)
    return rows


@dataclass
class HPOResults:
    """Outcome of a tuning run, ranked by ``metric`` (``mode`` min or max).

    With several tuned metrics, ``objectives`` lists ``(metric, mode)`` pairs, ``metric`` is
    the first (ranking, ``best``, ``best_config.yaml``) and :meth:`pareto_front` gives the
    trials no other trial beats on every metric.
    """

    metric: str
    mode: str
    rows: list[TrialRow]
    experiment_path: str | None = None
    max_epochs: int | None = None
    objectives: list[tuple[str, str]] = field(default_factory=list)
    scope: str = DEFAULT_SCOPE  # how a trial's reports rank it (see tuning.scope)
    #: The experiment was interrupted (a signal, a time limit): some trials did not end;
    #: ``--resume`` continues them (their rows have status "interrupted").
    interrupted: bool = False

    @classmethod
    def from_result_grid(cls, grid: Iterable[Any], metric: str | list[str],
                         mode: str | list[str], param_keys: Iterable[str],
                         max_epochs: int | None = None,
                         experiment_path: str | None = None,
                         scope: str = DEFAULT_SCOPE,
                         unfinished: Iterable[str] = ()) -> HPOResults:
        """``unfinished``: ids of trials that an interrupted experiment had not ended."""
        unfinished = set(unfinished)
        objectives: list[tuple[str, str]] = []
        if isinstance(metric, (list, tuple)):  # several metrics: rank on the first
            tuned = TunedMetrics.parse(metric, mode)
            objectives = tuned.pairs() if tuned.several else []
            metric, mode = tuned.first
        keys = list(param_keys)
        rows = []
        for result in grid:
            metrics = dict(result.metrics or {})
            epochs = int(metrics.get("training_iteration", 0) or 0)
            trial_id = _trial_id(result.path, metrics)
            if trial_id in unfinished:  # stopped by a signal: "--resume" continues it
                status = "interrupted" if epochs else "not started"
            elif result.error is not None:
                status = "error"
            elif epochs == 0:  # the experiment ended first (fail_fast, time budget)
                status = "not started"
            elif max_epochs is not None and epochs < max_epochs:
                status = "stopped early"
            else:
                status = "finished"
            config = dict(result.config or {})
            ckpt = getattr(result, "checkpoint", None)
            rows.append(TrialRow.scored(
                read_history(Path(str(result.path))) or [metrics], metric, mode,
                Scope.parse(scope), str(result.path),
                trial_id=trial_id,
                config={k: config.get(k) for k in keys} if keys else config,
                epochs=epochs, status=status, checkpoint=getattr(ckpt, "path", None),
                metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
                error=None if result.error is None else _error_line(result.error),
                traceback=None if result.error is None else _error_text(result),
            ))
        results = cls(metric=metric, mode=mode, rows=rows, experiment_path=experiment_path,
                      max_epochs=max_epochs, objectives=objectives, scope=str(Scope.parse(scope)),
                      interrupted=bool(unfinished))
        results.rows = results.ranked()
        return results

    def ranked(self) -> list[TrialRow]:
        """Trials best first; trials without a metric value last."""
        sign = 1.0 if self.mode == "min" else -1.0
        return sorted(self.rows, key=lambda r: (r.metric is None,
                                                sign * r.metric if r.metric is not None else 0))

    @property
    def best(self) -> TrialRow:
        """The best trial (by its ``metric`` under the experiment's ``scope``)."""
        scored = [r for r in self.ranked() if r.metric is not None]
        if not scored:
            errors = "; ".join(f"{r.trial_id}: {r.error}" for r in self.rows if r.error)
            from ..errors import ItwinaiRayError

            raise ItwinaiRayError(
                f"No trial reported a finite value of the metric {self.metric!r}. "
                f"{'Errors: ' + errors if errors else 'Check the metric name.'}"
            )
        return scored[0]

    @property
    def best_config(self) -> dict[str, Any]:
        return dict(self.best.config)

    def pareto_front(self) -> list[TrialRow]:
        """Trials on the Pareto front of ``objectives`` (empty with one metric); see
        :mod:`itwinai_ray.tuning.pareto`. Errored trials are left out."""
        from .pareto import pareto_indices

        if not self.objectives:
            return []
        rows = [r for r in self.ranked() if r.status != "error"]
        points = [[r.metrics.get(m) for m, _ in self.objectives] for r in rows]
        return [rows[i] for i in pareto_indices(points, [m for _, m in self.objectives])]

    def table(self) -> list[dict[str, Any]]:
        """Ranked rows as plain dicts (for JSON, CSV or a DataFrame)."""
        more = [m for m, _ in self.objectives[1:]]  # the other tuned metrics
        return [{"rank": i + 1, "trial_id": r.trial_id, **r.config, self.metric: r.metric,
                 "best": r.best, "best_epoch": r.best_epoch, "last": r.last,
                 **{m: _finite(r.metrics.get(m)) for m in more},
                 "epochs": r.epochs, "status": r.status} for i, r in enumerate(self.ranked())]

    def to_dataframe(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.table())

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        text = ", ".join(f"{n} {s}" for s, n in counts.items())
        scored = [r for r in self.ranked() if r.metric is not None]
        best = (f"best {self.metric}={scored[0].metric:.4g} ({self._where(scored[0])})"
                if scored else f"no trial reported a finite {self.metric}")
        if self.objectives:
            best += f"; Pareto front of {[m for m, _ in self.objectives]}: " \
                    f"{len(self.pareto_front())} trials"
        errored = [f"\n  errored: {r.trial_id}: {r.error} (logs: {r.logs()})"
                   for r in self.rows if r.status == "error"]
        head = "interrupted: " if self.interrupted else ""
        return f"{head}{len(self.rows)} trials ({text}); {best}{''.join(errored)}"

    def done(self) -> int:
        """Trials that ended (finished, stopped early or errored)."""
        return sum(r.status in ("finished", "stopped early", "error") for r in self.rows)

    def _where(self, row: TrialRow) -> str:
        """Which report(s) gave a row's value: 'trial X, epoch 4 of 6 (best epoch)'."""
        scope = Scope.parse(self.scope)
        epoch = row.best_epoch if scope.kind == "best" else row.epochs
        return f"trial {row.trial_id}, {scope.describe()}: {epoch} of {row.epochs}"

    def print_table(self, console: Any = None) -> None:
        """A ranked table of trials (rich), best first: the ranking value (per ``scope``),
        the best value with its epoch, and the last value."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        scope = Scope.parse(self.scope)
        keys = list(self.rows[0].config) if self.rows else []
        ranked_by = f"{self.metric} ({scope})"
        extra = [] if scope.kind == "best" else ["best"]
        table = Table(title=f"HPO results, ranked by {self.metric} ({self.mode}, "
                            f"{scope.describe()})")
        for col in ["#", "trial", *keys, ranked_by, *extra, "at epoch", "last", "epochs",
                    "status"]:
            table.add_column(col, justify="right" if col not in ("trial", "status") else "left")
        for i, r in enumerate(self.ranked()):
            values = [_fmt(r.config.get(k)) for k in keys]
            best = [] if scope.kind == "best" else [_num(r.best)]
            table.add_row(str(i + 1), r.trial_id, *values, _num(r.metric), *best,
                          "-" if r.best_epoch is None else str(r.best_epoch), _num(r.last),
                          str(r.epochs), r.status,
                          style="bold green" if i == 0 and r.metric is not None else None)
        console.print(table)

    def to_json(self) -> str:
        scored = [r for r in self.ranked() if r.metric is not None]
        return json.dumps({"metric": self.metric, "mode": self.mode, "scope": self.scope,
                           "interrupted": self.interrupted,
                           "best": scored[0].__dict__ if scored else None,
                           "trials": self.table(),
                           **({"objectives": [list(o) for o in self.objectives],
                               "pareto_front": [r.trial_id for r in self.pareto_front()]}
                              if self.objectives else {}),
                           "errors": [{"trial_id": r.trial_id, "error": r.error,
                                       "traceback": r.traceback, "path": r.path}
                                      for r in self.rows if r.status == "error"]},
                          indent=2, default=str)


def _error_line(error: BaseException) -> str:
    """``Type: message`` of a trial error, unwrapped from Ray's task error, on one line."""
    cause = getattr(error, "cause", None)  # RayTaskError keeps the user's exception
    exc = cause if isinstance(cause, BaseException) else error
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}"[:500]


def _error_text(result: Any, limit: int = 20_000) -> str:
    """The trial's full error text: Tune's ``error.txt`` if there, else the exception."""
    path = Path(str(getattr(result, "path", "") or "")) / "error.txt"
    try:
        text = path.read_text()
    except OSError:
        text = str(result.error)
    return re.sub(r"\x1b\[[0-9;]*m", "", text)[-limit:]  # no terminal colours in JSON


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def best_pipeline_config(config: Mapping[str, Any], trainer_location: list[str | int],
                         values: Mapping[str, Any], config_keys: Iterable[str],
                         unwrap: bool) -> dict[str, Any]:
    """The pipeline config with the best values filled in, ready to run.

    ``trainer_location`` is the path of the RayTorchTrainer node in ``config``. With
    ``unwrap`` (a wrapped trainer), the node is replaced by the wrapped trainer's node, so the
    result trains the best configuration once, without Ray. Values of ``config_keys`` go
    into the trainer's ``config``; the others are constructor arguments.
    """
    out = copy.deepcopy(dict(config))
    parent: Any = out
    for part in trainer_location[:-1]:
        parent = parent[part]
    node = parent[trainer_location[-1]]
    if unwrap:
        node = _kwargs(node)["trainer"]
        parent[trainer_location[-1]] = node
    kwargs = _kwargs(node)
    in_config = set(config_keys)
    for key, value in values.items():
        if key in in_config:
            _config_node(kwargs)[key] = value
        else:
            kwargs[key] = value
    if not unwrap:  # a RayTorchTrainer subclass: run the best values once
        for key in ("search_space", "ray_search_space"):
            kwargs.pop(key, None)
        for key in ("tune_config", "ray_tune_config"):
            if isinstance(kwargs.get(key), dict) and "num_samples" in kwargs[key]:
                kwargs[key]["num_samples"] = 1
        for key in ("run_config", "ray_run_config"):  # a new experiment, never the tuned one
            run = kwargs.get(key)
            if isinstance(run, dict) and isinstance(run.get("name"), str):
                run["name"] = f"{run['name']}-best"
    return out


def _config_node(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The trainer's ``config`` mapping to fill in: created when it is ``null`` or omitted
    (itwinai's ``config: null``), the ``init_args`` of a ``class_path`` node."""
    config = kwargs.get("config")
    if not isinstance(config, dict):
        config = kwargs["config"] = {}
    return _kwargs(config)


def _kwargs(node: dict[str, Any]) -> dict[str, Any]:
    if "class_path" in node:
        return node.setdefault("init_args", {})
    return node


def write_yaml(data: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(yaml_safe(data), sort_keys=False))
    return path
