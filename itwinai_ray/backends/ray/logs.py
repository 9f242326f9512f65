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
checkpoint (or from scratch, without one), the rows after that checkpoint's iteration are
dropped at its first result, as it reports them again (a trial that never reports again keeps
them). A trial that starts from another trial's checkpoint (PBT's exploit) keeps its rows.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

LOG_FILES = ("result.json", "progress.csv")


def _read(fs: Any, path: str) -> bytes:
    """The file's bytes; empty if it is missing or cannot be read."""
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except OSError:
        return b""


def _log_paths(trial: Any) -> list[tuple[str, str, str]]:
    """``(name, staging path, storage path)`` of each log file of the trial."""
    return [(name, os.path.join(trial.local_path, name), f"{trial.storage.trial_fs_path}/{name}")
            for name in LOG_FILES]


def _lines(fs: Any, path: str) -> int:
    return _read(fs, path).count(b"\n")


def persist_trial_logs(trial: Any) -> dict[str, int]:
    """Copy the trial's log files from its driver staging dir to its storage dir, where the
    storage copy has fewer lines; return ``{name: lines the storage copy was missing}``."""
    import pyarrow.fs

    storage = trial.storage
    fs = storage.storage_filesystem
    kept = {}
    for name, local, remote in _log_paths(trial):
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
    except (ValueError, KeyError, TypeError, OverflowError):
        return None


def _csv_iteration(header: str) -> Callable[[str], int | None]:
    columns = next(csv.reader([header]), [])
    column = columns.index("training_iteration") if "training_iteration" in columns else None

    def iteration(line: str) -> int | None:
        row = next(csv.reader([line]), [])
        if column is None or len(row) != len(columns):  # Tune writes no new header when
            return None                                 # a resumed trial's keys differ
        try:
            return int(float(row[column]))
        except (ValueError, OverflowError):
            return None  # the header, or a row that is not ours to judge
    return iteration


def _kept_prefix(data: bytes, json_rows: bool, last: int) -> tuple[int, int]:
    """``(bytes, rows)``: the length of the part of a log file that keeps its rows up to
    iteration ``last``, and how many trailing rows are after it. A row it cannot read stops
    the walk, so nothing before it is dropped."""
    lines = re.findall(rb"[^\n]*\n|[^\n]+$", data)
    texts = [line.decode(errors="replace").rstrip("\r\n") for line in lines]
    if not texts:
        return 0, 0
    iteration = _json_iteration if json_rows else _csv_iteration(texts[0])
    keep = len(texts)
    while keep and (it := iteration(texts[keep - 1])) is not None and it > last:
        keep -= 1
    return sum(len(line) for line in lines[:keep]), len(lines) - keep


def _rewind_local(path: str, json_rows: bool, last: int) -> int:
    """In place (the loggers append to this file through handles they keep open)."""
    if not os.path.isfile(path):
        return 0
    with open(path, "rb") as f:
        size, dropped = _kept_prefix(f.read(), json_rows, last)
    if dropped:
        os.truncate(path, size)
    return dropped


def _rewind_stored(fs: Any, path: str, json_rows: bool, last: int) -> int:
    """Written beside it, then moved over it: a crash keeps one whole copy."""
    data = _read(fs, path)
    size, dropped = _kept_prefix(data, json_rows, last)
    if dropped:
        with fs.open_output_stream(f"{path}.rewind") as f:
            f.write(data[:size])
        fs.move(f"{path}.rewind", path)
    return dropped


def start_iteration(trial: Any) -> int | None:
    """The iteration a starting trial goes on from: its own checkpoint's, 0 without a
    checkpoint (a retry or resume from scratch); None from another trial's checkpoint (PBT's
    exploit), where its history is its own up to the clone and goes on from the source's."""
    checkpoint, result = trial.checkpoint, trial.latest_checkpoint_result
    if checkpoint is None:
        return 0
    own_dir = trial.storage.trial_fs_path.rstrip("/") + "/"
    last = (result.metrics or {}).get("training_iteration") if result else None
    if last is None or not checkpoint.path.startswith(own_dir):
        return None
    return int(last)


def rewind_trial_logs(trial: Any, last: int) -> dict[str, int]:
    """Drop the rows logged after iteration ``last`` from the trial's log files, in staging
    and storage (the CSV logger copies storage back on its first row after a resume); return
    ``{name: rows dropped}``."""
    dropped = {}
    for name, local, stored in _log_paths(trial):
        json_rows = name.endswith(".json")
        try:
            count = _rewind_local(local, json_rows, last)
            if os.path.abspath(local) != os.path.abspath(stored):
                count = max(count, _rewind_stored(trial.storage.storage_filesystem, stored,
                                                  json_rows, last))
        except Exception:  # noqa: BLE001 - a doubled log line is not worth failing the run for
            logger.exception("Could not drop the rows of %s after trial %s's checkpoint",
                             name, trial)
            continue
        if count:
            dropped[name] = count
    if dropped:
        start = f"its checkpoint of iteration {last}" if last else "scratch"
        logger.info("Trial %s started again from %s and reports the rows logged after it "
                    "again: dropped the earlier ones (%s).", trial, start, dropped)
    return dropped


def keep_logs_callback() -> Any:
    """A Tune callback that runs :func:`persist_trial_logs` when a trial is recovered and
    when a trial that has a checkpoint starts (a retry, a resumed pause, a resumed run), and
    :func:`rewind_trial_logs` to :func:`start_iteration` at the first result after a start
    (only then: a trial that never reports again keeps its rows)."""
    import ray.tune

    class KeepLogsOnRestart(ray.tune.Callback):
        def __init__(self) -> None:
            self._rewind_at_next_result: dict[str, int] = {}  # trial id: checkpoint iteration

        def on_trial_recover(self, iteration: int, trials: list, trial: Any,
                             **info: Any) -> None:
            persist_trial_logs(trial)

        def on_trial_start(self, iteration: int, trials: list, trial: Any,
                           **info: Any) -> None:
            if trial.checkpoint:  # else the loggers restore nothing
                persist_trial_logs(trial)
            last = start_iteration(trial)
            if last is not None:
                self._rewind_at_next_result[trial.trial_id] = last

        def on_trial_result(self, iteration: int, trials: list, trial: Any,
                            result: dict, **info: Any) -> None:
            last = self._rewind_at_next_result.pop(trial.trial_id, None)
            if last is not None:
                rewind_trial_logs(trial, last)

    return KeepLogsOnRestart()
