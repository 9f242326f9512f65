"""Where Ray's output goes: a quiet terminal by default, everything kept in log files.

A run shows the progress view, one line per trial event, the results table and paths. Ray's
own output (Tune's start banner, ``ray.init``'s token and dashboard lines, the Train
controller's and workers' chatter) goes to files that the summary points to:

- the driver: ``<experiment>/logs/driver.log`` (:func:`quiet_driver`): Python-level
  ``sys.stdout``/``sys.stderr`` and the ``ray`` logger; itwinai_ray's own log lines and the
  progress view keep the terminal (their handlers hold the terminal's stream);
- every trial process and Train worker: ``<trial dir>/trial.log`` and
  ``<trial dir>/worker-<rank>.log`` (:func:`capture_fds`): file descriptors 1 and 2, so C++
  and subprocess output is kept as well;
- the local Ray's own process logs (controller, raylet, GCS): copied to
  ``<experiment>/logs/ray`` when the run ends (:func:`keep_session_logs`).

``ray.init(log_to_driver=False)`` stops Ray forwarding worker output to the terminal.
``run_config.verbose >= 1`` (or ``itwinai-ray -v``) keeps today's Ray behaviour instead.
No Ray import here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

#: Below the experiment directory: the driver's Ray output and a copy of Ray's own logs.
LOGS_DIR = "logs"
DRIVER_LOG = "driver.log"
#: In each trial directory: the trial process, and the Train worker of each rank.
TRIAL_LOG = "trial.log"
WORKER_LOG = "worker-{rank}.log"

#: Ray's own log files worth keeping (the rest is metrics, events, sockets).
_SESSION_LOG_SUFFIXES = (".out", ".err", ".log")


def driver_log_path(experiment_dir: str) -> Path:
    return Path(experiment_dir) / LOGS_DIR / DRIVER_LOG


@contextlib.contextmanager
def quiet_driver(log_path: Path) -> Iterator[TextIO]:
    """Send the driver's Python-level stdout/stderr and the ``ray`` logger to ``log_path``.

    Yields the terminal's stdout, for the progress view. Log handlers created before (the
    CLI's) still hold the terminal.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ray_logger = logging.getLogger("ray")
    saved = (sys.stdout, sys.stderr, list(ray_logger.handlers), ray_logger.propagate)
    with open(log_path, "a", buffering=1, encoding="utf-8") as log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(filename)s:%(lineno)d -- %(message)s"))
        for old in saved[2]:
            ray_logger.removeHandler(old)
        ray_logger.addHandler(handler)
        ray_logger.propagate = False
        sys.stdout, sys.stderr = log_file, log_file
        try:
            yield saved[0]
        finally:
            sys.stdout, sys.stderr = saved[0], saved[1]
            ray_logger.removeHandler(handler)
            for old in saved[2]:
                ray_logger.addHandler(old)
            ray_logger.propagate = saved[3]


@contextlib.contextmanager
def capture_fds(path: str | os.PathLike[str]) -> Iterator[None]:
    """Point file descriptors 1 and 2 of this process at ``path`` (appending), then back.

    Used in trial processes and Train workers, whose output Ray would otherwise forward to
    the driver's terminal (or, with ``log_to_driver=False``, bury in its session directory).
    A directory that cannot be written leaves the output where it was, with one warning.
    """
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        logger.warning("Could not write %s (%s): this process's output stays in Ray's logs.",
                       path, exc)
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for kept in (*saved, fd):
            os.close(kept)


def keep_session_logs(session_dir: str | None, experiment_dir: str) -> Path | None:
    """Copy the local Ray session's process logs to ``<experiment>/logs/ray``; return it.

    The session directory of a local Ray is deleted at shutdown (it is private to the run),
    so its logs are kept with the experiment. Only log files are copied (no sockets, metrics).
    """
    source = Path(session_dir or "") / "logs"
    if not session_dir or not source.is_dir():
        return None
    target = Path(experiment_dir) / LOGS_DIR / "ray"
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.name.endswith(_SESSION_LOG_SUFFIXES):
            with contextlib.suppress(OSError):  # a file Ray removes meanwhile is no loss
                shutil.copy2(item, target / item.name)
    return target
