"""Keep a restarted trial's reported history (``result.json``, ``progress.csv``).

Tune's loggers write a trial's history into its driver staging directory, which is synced to
the storage path only from time to time. Whenever a trial with a checkpoint starts again, the
loggers first copy the *storage* copy back over the staging one
(``LoggerCallback._restore_from_remote``), and results logged since the last sync are lost
from the history. That happens:

- when a trial fails and is retried (``max_failures``). Measured: a DeepSpeed trial failing
  in epoch 2 kept epochs [2, 3] of [1, 2, 3], though its retry resumed from epoch 1's
  checkpoint;
- when a paused trial resumes: PBT pauses a trial at each exploit, and pauses trials that are
  ahead so that the others catch up when fewer slots than trials run. Measured: 3 of 14 PBT
  runs of 4 trials on 2 slots lost lines, one trial keeping 0 of its 5.

This callback uploads the logs when a trial is recovered and when it starts, before the
loggers' own start (Tune appends them after the run's callbacks), so what is copied back is
the full history.

The history can also run *ahead* of the checkpoint a trial starts again from. Tune logs a
result, then saves its checkpoint in a separate step; a stop (SIGTERM, SIGUSR1) or a failure
between the two keeps the logged row and drops the save. The trial then starts again from the
checkpoint before and reports that epoch again. Measured: an interrupted run of 2 trials,
resumed, logged iteration 3 twice in both. So when a trial starts again from its *own*
checkpoint, the rows after that checkpoint's iteration are dropped: they are reported again.
A trial that starts from another trial's checkpoint (PBT's exploit) keeps its rows.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

LOG_FILES = ("result.json", "progress.csv")


def _lines(fs: Any, path: str) -> int:
    try:
        with fs.open_input_stream(path) as f:
            return f.read().count(b"\n")
    except (FileNotFoundError, OSError):
        return 0


def persist_trial_logs(trial: Any) -> dict[str, int]:
    """Copy the trial's log files from its driver staging dir to its storage dir, where the
    storage copy has fewer lines; return ``{name: lines the storage copy was missing}``."""
    import pyarrow.fs

    storage = trial.storage
    fs = storage.storage_filesystem
    kept = {}
    for name in LOG_FILES:
        local = os.path.join(trial.local_path, name)
        remote = f"{storage.trial_fs_path}/{name}"
        if not os.path.isfile(local) or os.path.abspath(local) == os.path.abspath(remote):
            continue
        missing = _lines(pyarrow.fs.LocalFileSystem(), local) - _lines(fs, remote)
        if missing <= 0:
            continue
        try:
            fs.create_dir(storage.trial_fs_path, recursive=True)
            pyarrow.fs.copy_files(local, remote, destination_filesystem=fs)
            kept[name] = missing
        except Exception:  # noqa: BLE001 - a lost log line is not worth failing the run for
            logger.exception("Could not save %s of trial %s before it starts again", name,
                             trial)
    if kept:
        logger.info("Trial %s starts again: saved %s to storage first (lines it lacked), so "
                    "it keeps the whole history.", trial, kept)
    return kept


def _json_iteration(line: str) -> int | None:
    try:
        return int(json.loads(line)["training_iteration"])
    except (ValueError, KeyError, TypeError):
        return None


def _csv_iteration(header: str) -> Callable[[str], int | None]:
    columns = next(csv.reader([header]), [])
    column = columns.index("training_iteration") if "training_iteration" in columns else None

    def iteration(line: str) -> int | None:
        try:
            return int(float(next(csv.reader([line]))[column]))
        except (ValueError, IndexError, TypeError, StopIteration):
            return None  # the header, or a row that is not ours to judge
    return iteration


def _rewind_file(fs: Any, path: str, last: int) -> int:
    """Drop the trailing rows of a log file whose ``training_iteration`` is after ``last``;
    return how many. A row it cannot read stops the walk (nothing before it is dropped)."""
    try:
        with fs.open_input_stream(path) as f:
            lines = f.read().decode().splitlines(keepends=True)
    except (FileNotFoundError, OSError):
        return 0
    if not lines:
        return 0
    iteration = _json_iteration if path.endswith(".json") else _csv_iteration(lines[0])
    keep = len(lines)
    while keep and (it := iteration(lines[keep - 1])) is not None and it > last:
        keep -= 1
    if keep < len(lines):
        with fs.open_output_stream(path) as f:
            f.write("".join(lines[:keep]).encode())
    return len(lines) - keep


def rewind_trial_logs(trial: Any) -> dict[str, int]:
    """For a trial starting again from its own checkpoint, drop the logged rows after the
    checkpoint's iteration, in storage and staging; return ``{name: rows dropped}``."""
    import pyarrow.fs

    checkpoint, result = trial.checkpoint, trial.latest_checkpoint_result
    own_dir = trial.storage.trial_fs_path.rstrip("/") + "/"
    last = (result.metrics or {}).get("training_iteration") if result else None
    if checkpoint is None or last is None or not checkpoint.path.startswith(own_dir):
        return {}
    dropped = {}
    for name in LOG_FILES:
        local = os.path.join(trial.local_path, name)
        remote = f"{trial.storage.trial_fs_path}/{name}"
        try:
            count = _rewind_file(trial.storage.storage_filesystem, remote, int(last))
            if os.path.abspath(local) != os.path.abspath(remote):
                count = max(count, _rewind_file(pyarrow.fs.LocalFileSystem(), local, int(last)))
        except Exception:  # noqa: BLE001 - a doubled log line is not worth failing the run for
            logger.exception("Could not drop the rows of %s after trial %s's checkpoint",
                             name, trial)
            continue
        if count:
            dropped[name] = count
    if dropped:
        logger.info("Trial %s starts again from its checkpoint of iteration %d: dropped the "
                    "rows logged after it (%s), which it reports again.", trial, last, dropped)
    return dropped


def keep_logs_callback() -> Any:
    """A Tune callback that runs :func:`persist_trial_logs` when a trial is recovered and
    when a trial that has a checkpoint starts (a retry, a resumed pause, a resumed run), then
    :func:`rewind_trial_logs` on that start."""
    import ray.tune

    class KeepLogsOnRestart(ray.tune.Callback):
        def on_trial_recover(self, iteration: int, trials: list, trial: Any,
                             **info: Any) -> None:
            persist_trial_logs(trial)

        def on_trial_start(self, iteration: int, trials: list, trial: Any,
                           **info: Any) -> None:
            if trial.checkpoint:  # else the loggers restore nothing
                persist_trial_logs(trial)
                rewind_trial_logs(trial)

    return KeepLogsOnRestart()
