"""Keep a retried trial's reported history (``result.json``, ``progress.csv``).

Tune's loggers write a trial's history into its driver staging directory, which is synced to
the storage path only from time to time. When a trial fails and is retried (``max_failures``),
the loggers start again by copying the *storage* copy back over the staging one
(``LoggerCallback._restore_from_remote``): results logged since the last sync, e.g. the epoch
just before the failure, are lost from the history (measured: a DeepSpeed trial failing in
epoch 2 kept epochs [2, 3] of [1, 2, 3], though its retry resumed from epoch 1's checkpoint).
This callback uploads the logs when a trial is recovered, before its retry starts, so what
is copied back is the full history.
"""

from __future__ import annotations

import logging
import os
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
            logger.exception("Could not save %s of trial %s before its retry", name, trial)
    if kept:
        logger.info("Trial %s is retried: saved %s to storage first (lines it lacked), so the "
                    "retry keeps the whole history.", trial, kept)
    return kept


def keep_logs_callback() -> Any:
    """A Tune callback that runs :func:`persist_trial_logs` when a trial is recovered."""
    import ray.tune

    class KeepLogsOnRetry(ray.tune.Callback):
        def on_trial_recover(self, iteration: int, trials: list, trial: Any,
                             **info: Any) -> None:
            persist_trial_logs(trial)

    return KeepLogsOnRetry()
