"""The ranked trial table in several formats, and the best configuration as YAML."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import yaml

from .._yaml import yaml_safe
from .loading import Experiment

FORMATS = ("table", "json", "csv", "markdown")


def rows(exp: Experiment) -> list[dict[str, Any]]:
    """Ranked rows: rank, trial, config values, metric(s), epochs, status, stopped early,
    error."""
    by_id = {r.trial_id: r for r in exp.results.rows}
    out = []
    for row in exp.results.table():
        trial = by_id[row["trial_id"]]
        out.append({**row, "stopped_early": trial.status == "stopped early",
                    "error": trial.error})
    return out


def best_values(exp: Experiment) -> dict[str, Any] | None:
    """The best trial's sampled values, or None when no trial reported the metric."""
    scored = [r for r in exp.results.ranked() if r.metric is not None]
    return dict(scored[0].config) if scored else None


def to_json(exp: Experiment) -> str:
    best = next((r for r in exp.results.ranked() if r.metric is not None), None)
    data = {
        "experiment": str(exp.path), "metric": exp.metric, "mode": exp.mode,
        "best": None if best is None else {"trial_id": best.trial_id, "config": best.config,
                                           exp.metric: best.metric, "epochs": best.epochs,
                                           "checkpoint": best.checkpoint, "path": best.path},
        "trials": rows(exp),
    }
    if exp.results.objectives:
        data["objectives"] = [list(o) for o in exp.results.objectives]
        data["pareto_front"] = [r.trial_id for r in exp.results.pareto_front()]
    return json.dumps(yaml_safe(data), indent=2)


def to_csv(exp: Experiment) -> str:
    table = rows(exp)
    buf = io.StringIO()
    if table:
        writer = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(exp: Experiment) -> str:
    table = rows(exp)
    if not table:
        return "_no trials_\n"
    cols = [c for c in table[0] if c != "error" or any(r["error"] for r in table)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r[c]) for c in cols) + " |" for r in table]
    return "\n".join(lines) + "\n"


def print_rich(exp: Experiment, console: Any) -> None:
    """A ranked rich table, best first; an error column when a trial failed."""
    from rich.table import Table

    table_rows = rows(exp)
    keys = exp.param_keys
    metrics = [exp.metric, *[m for m, _ in exp.results.objectives[1:]]]
    show_errors = any(r["error"] for r in table_rows)
    table = Table(title=f"{exp.path.name}: {len(table_rows)} trials ranked by {exp.metric} "
                        f"({exp.mode})")
    cols = ["#", "trial", *keys, *metrics, "epochs", "status"] + (["error"] if show_errors
                                                                 else [])
    for col in cols:
        table.add_column(col, justify="left" if col in ("trial", "status", "error")
                         else "right", overflow="fold")
    for i, r in enumerate(table_rows):
        cells = [str(r["rank"]), r["trial_id"], *(_cell(r.get(k)) for k in keys),
                 *(_cell(r.get(m)) for m in metrics), str(r["epochs"]), r["status"]]
        if show_errors:
            cells.append(_cell(r["error"]))
        style = "bold green" if i == 0 and r[exp.metric] is not None else (
            "red" if r["status"] == "error" else ("dim" if r["stopped_early"] else None))
        table.add_row(*cells, style=style)
    console.print(table)


def best_yaml(values: dict[str, Any]) -> str:
    return yaml.safe_dump(yaml_safe(values), sort_keys=False)
