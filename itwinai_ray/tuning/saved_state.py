"""What Tune saved of an experiment (``experiment_state-*.json``), read without Ray.

Tune writes the state of every trial it created: a trial still ``RUNNING``, ``PENDING`` or
``PAUSED`` there when the experiment ended was interrupted (a signal, a time limit) and
``--resume`` continues it. ``itwinai-ray results`` and the end of a run read it the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE_GLOB = "experiment_state-*.json"
#: Tune statuses of a trial that an interrupted experiment had not ended.
UNFINISHED = ("RUNNING", "PAUSED", "PENDING")


def read_json_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def trial_states(path: str | Path) -> dict[str, tuple[str, str]]:
    """Trial directory name -> (trial id, Tune status) from the newest experiment state.

    Newest by the start time in the file's name (each run, a resumed one too, writes its
    own ``experiment_state-<date>_<time>.json``): at the end Tune syncs every state file, so
    their modification times are all the same."""
    states = sorted(Path(path).glob(STATE_GLOB), key=lambda p: p.name)
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for entry in data.get("trial_data", []) if isinstance(data, dict) else []:
        trial = entry[0] if isinstance(entry, list) and entry else entry
        if isinstance(trial, str):
            trial = read_json_text(trial)
        if isinstance(trial, dict) and trial.get("relative_logdir"):
            out[str(trial["relative_logdir"])] = (str(trial.get("trial_id")),
                                                  str(trial.get("status")))
    return out


def unfinished_trials(path: str | Path) -> set[str]:
    """Ids of the trials the saved state holds as not ended (an interrupted experiment)."""
    return {tid for tid, status in trial_states(path).values() if status in UNFINISHED}
