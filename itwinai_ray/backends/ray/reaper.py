"""No orphans: the local Ray instance that :func:`~itwinai_ray.backends.ray.driver.ensure_ray`
starts dies with its driver.

What Ray 2.60 does by itself when the driver is SIGKILLed (measured on Linux): ``gcs_server``,
``raylet``, the dashboard, ``monitor.py`` and ``log_monitor.py`` die at once, and the workers
follow the raylet. The raylet's two agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``)
notice that the raylet is gone, but, as its log holds no "received SIGTERM", they first try to
report the "unexpected termination" to the (dead) GCS with a 60 s timeout
(``ray/_private/process_watcher.py::report_raylet_error_logs``), so they live about a minute
more. The session root (``/tmp/ir-XXXXXXXX``, see :mod:`.security`) is never removed.

Two layers, both keyed on the session root:

- a **watchdog**, a small detached process started with the root, that polls the driver and,
  once the driver is gone, stops the session's processes and removes the root. It exits by
  itself when the root disappears (normal :func:`~.driver.shutdown`), and
  :func:`stop_watchdog` also ends it then;
- a **reap on start**: the next local start removes the roots (and stops the processes) of
  drivers that died on this host, in case the watchdog itself was killed (e.g. ``kill -9``
  of the whole process tree, or an OOM kill).

A root names its driver in ``driver.json`` (host, pid, process create time), so a pid reused
by another process does not pass for the driver. A process belongs to a session when its
command line or one of its open files is under the root: the agents rename their process
title (``ray::DashboardAgent``), so only their open log files identify them.

No Ray import; :mod:`psutil` comes from the environment or from Ray's vendored copy.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from itwinai_ray._fs import remove_tree

logger = logging.getLogger(__name__)

#: The file in a session root that names its driver.
DRIVER_FILE = "driver.json"
#: Session roots are ``<base>/ir-XXXXXXXX`` (:func:`.security.secure_local_start`).
ROOT_PREFIX = "ir-"
#: How often the watchdog checks the driver and the root.
POLL_S = 0.5
#: How long a SIGTERMed process gets before SIGKILL.
GRACE_S = 2.0
#: How long removing a root keeps trying while the last processes exit.
REMOVE_TIMEOUT_S = 10.0
#: A process whose create time differs more than this from the recorded one is another
#: process under a reused pid. Not exact: the epoch time psutil reports moves with clock
#: corrections (``/proc/stat`` btime); a reused pid starts long after the driver did.
CREATE_TIME_TOLERANCE_S = 1.0

_watchdogs: dict[str, subprocess.Popen] = {}  # session root -> its watchdog (this driver)


def _psutil() -> Any:
    """psutil (a dependency), imported when needed: the watchdog starts fast."""
    import psutil

    return psutil


# ---------------------------------------------------------------------------- driver record
def write_driver_file(root: str, pid: int, create_time: float) -> None:
    """Record in ``root`` which process (on which host) owns it."""
    record = {"host": socket.gethostname(), "pid": pid, "create_time": create_time}
    Path(root, DRIVER_FILE).write_text(json.dumps(record))


def read_driver_file(root: str) -> dict | None:
    """The record written by :func:`write_driver_file`; None when missing or unreadable
    (a root made by an older version, or one still being set up)."""
    try:
        record = json.loads(Path(root, DRIVER_FILE).read_text())
        return {"host": str(record["host"]), "pid": int(record["pid"]),
                "create_time": float(record["create_time"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def driver_alive(pid: int, create_time: float) -> bool:
    """Whether the process ``pid`` that started at ``create_time`` still runs.

    A zombie counts as dead (its parent has not reaped it yet, but it runs no code), and so
    does a process that reuses the pid but started at another time. A process that cannot
    be inspected counts as alive: never reap a run that may still be going."""
    psutil = _psutil()
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - create_time) <= CREATE_TIME_TOLERANCE_S
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def stale_roots(base: str, host: str | None = None,
                alive: Callable[[int, float], bool] = driver_alive) -> list[str]:
    """Session roots under ``base`` whose driver died on this host.

    Only real directories named ``ir-*``, owned by this user and holding a driver record
    count; a root of another host (``$RAY_TMPDIR`` on a shared file system) is left alone,
    as its driver cannot be checked from here."""
    host = host or socket.gethostname()
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    stale = []
    for name in names:
        root = os.path.join(base, name)
        if not name.startswith(ROOT_PREFIX) or not _own_directory(root):
            continue
        record = read_driver_file(root)
        if record and record["host"] == host and not alive(record["pid"],
                                                            record["create_time"]):
            stale.append(root)
    return stale


def _own_directory(path: str) -> bool:
    """A directory (not a link to one) owned by this user."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


# ---------------------------------------------------------------------------- reaping
def root_marks(root: str) -> tuple[str, ...]:
    """The prefixes that place a path inside ``root`` (as given and resolved)."""
    return tuple({os.path.join(r, "") for r in (root, os.path.realpath(root))})


def mentions_root(cmdline: Iterable[str], open_paths: Iterable[str],
                  marks: tuple[str, ...]) -> bool:
    """Whether a process with this command line and these open files belongs to the root."""
    return (any(m in arg for arg in cmdline for m in marks)
            or any(p.startswith(marks) for p in open_paths))


def session_processes(root: str) -> list[Any]:
    """This user's processes (but this one) that run in, or write to, the session ``root``."""
    psutil = _psutil()
    marks, me, uid = root_marks(root), os.getpid(), os.getuid()
    found = []
    for proc in psutil.process_iter(["uids", "cmdline"]):
        uids = proc.info["uids"]
        if proc.pid == me or uids is None or uids.real != uid:
            continue
        try:
            cmdline = proc.info["cmdline"] or []
            if mentions_root(cmdline, (), marks) or mentions_root(
                    (), (f.path for f in proc.open_files()), marks):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # gone meanwhile, or not ours to inspect
    return found


def stop_processes(procs: list[Any], grace_s: float = GRACE_S) -> int:
    """SIGTERM ``procs``, SIGKILL those alive after ``grace_s``; return how many were alive.

    psutil refuses to signal a pid that was reused since ``procs`` were listed."""
    psutil = _psutil()
    signalled = []
    for proc in procs:
        try:
            proc.terminate()
            signalled.append(proc)
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            logger.warning("Not allowed to stop process %d of a killed driver's Ray.", proc.pid)
    _, left = psutil.wait_procs(signalled, timeout=grace_s)
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(left, timeout=grace_s)
    return len(signalled)


def reap_root(root: str) -> int:
    """Stop the processes of the session ``root`` and delete it; return how many ran."""
    stopped = stop_processes(session_processes(root))
    if not remove_tree(root, REMOVE_TIMEOUT_S):
        logger.warning("Could not remove Ray's session files at %s; remove them by hand.", root)
    return stopped


def reap_stale(base: str) -> list[str]:
    """Reap the session roots under ``base`` left by drivers that died (see module doc)."""
    roots = stale_roots(base)
    if roots:
        stopped = sum(reap_root(root) for root in roots)
        logger.info("Reaped %d local Ray session(s) left by killed drivers (%s): %d process(es) "
                    "stopped.", len(roots), ", ".join(roots), stopped)
    return roots


# ---------------------------------------------------------------------------- watchdog
def guard(root: str) -> None:
    """Record this process as the driver of ``root`` and start its watchdog."""
    pid = os.getpid()
    create_time = _psutil().Process(pid).create_time()
    write_driver_file(root, pid, create_time)
    package_parent = str(Path(__file__).resolve().parents[2])  # so `-m` finds itwinai_ray
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH"))
                                        if p)
    # A new session: a Ctrl-C or a SIGTERM to the driver's process group spares it. No
    # inherited output: a caller that reads the driver's pipes must not wait for it.
    _watchdogs[root] = subprocess.Popen(
        [sys.executable, "-m", __name__, root, str(pid), repr(create_time)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env=env)


def stop_watchdog(root: str, timeout_s: float = 5.0) -> None:
    """End the watchdog of ``root`` (the driver shut Ray down itself) and reap its exit."""
    proc = _watchdogs.pop(root, None)
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("The Ray watchdog (pid %d) did not stop; killing it.", proc.pid)
        proc.kill()
        proc.wait()


def watch(root: str, pid: int, create_time: float, poll_s: float = POLL_S) -> None:
    """Wait until the root is gone (nothing to do) or the driver is (reap the root)."""
    while os.path.isdir(root):
        if not driver_alive(pid, create_time):
            reap_root(root)
            return
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    """``python -m itwinai_ray.backends.ray.reaper ROOT PID CREATE_TIME`` (see :func:`guard`)."""
    root, pid, create_time = (argv if argv is not None else sys.argv[1:])
    watch(root, int(pid), float(create_time))
    return 0


if __name__ == "__main__":
    sys.exit(main())
