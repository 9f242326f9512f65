"""Rebuild an experiment's trial journal from its trials' ``result.json`` (no Ray here).

For experiments from before journals, or whose journal was lost or cut: ``itwinai-ray results
EXPERIMENT_DIR --journal``. The journal is written next to the old one and then moved over it,
so a reader never sees half of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._journal_params import infer_distributions
from .journal import COMPLETE, FAIL, PRUNED, JournalWriter, Objectives, journal_path, study_name
from .scope import Scope


def rebuild_journal(experiment: Any, distributions: Mapping[str, Any] | None = None) -> Path:
    """Write the journal of an experiment read by
    :func:`itwinai_ray.report.loading.load_experiment` (e.g. one from before journals) from
    its trials' ``result.json``, replacing any journal there. Run it when the experiment is
    not running (a live writer appends to the file it opened). Distributions come from
    ``distributions``, else ``itwinai_ray.json``, else the values the trials took."""
    results = experiment.results
    pairs = results.objectives or [(results.metric, results.mode)]
    objectives = Objectives.build([m for m, _ in pairs], [m for _, m in pairs],
                                  Scope.parse(results.scope))
    dists = distributions or experiment.meta.get("distributions") or infer_distributions(
        [r.config for r in results.rows], experiment.param_keys)
    final = journal_path(experiment.path)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    writer = JournalWriter(experiment.path, objectives, name=study_name(experiment.path))
    writer.path = tmp
    try:
        writer.open()
        _write_trials(writer, experiment, dists)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.lock").unlink(missing_ok=True)
    return final


def _write_trials(writer: JournalWriter, experiment: Any, dists: Mapping[str, Any]) -> None:
    """Each trial that started, in the order they started, with its reports and its end."""
    ends = {"finished": COMPLETE, "stopped early": PRUNED, "error": FAIL}
    histories = experiment.histories
    for row in sorted(experiment.results.rows,
                      key=lambda r: _started_at(histories.get(r.trial_id))):
        if row.status not in ends and row.status != "unfinished":
            continue  # pending, not started: no trial yet
        writer.trial_started(row.trial_id, row.config, dists)
        for report in histories.get(row.trial_id) or []:
            step = int(report.get("training_iteration", 0) or 0)
            writer.trial_reported(row.trial_id, step, report)
        if row.status in ends:
            writer.trial_ended(row.trial_id, ends[row.status], reason=row.error)


def _started_at(history: list[dict[str, Any]] | None) -> float:
    first = (history or [{}])[0]
    try:
        return float(first.get("timestamp", 0)) - float(first.get("time_this_iter_s", 0) or 0)
    except (TypeError, ValueError):
        return 0.0
