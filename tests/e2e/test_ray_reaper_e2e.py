"""No orphans (issue 15, point 10): the local Ray that itwinai_ray starts dies with its driver,
and the next start reaps what a killed driver (and its watchdog) left behind. A real driver of
a real local Ray is SIGKILLed here; the pure parts: tests/unit/test_ray_reaper.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from testkit import PYTHON, subprocess_env

from itwinai_ray.backends.ray import reaper as _ray_reaper

NO_SUCH_PID = 2**22 + 4321  # above the largest pid_max Linux allows


# ---------------------------------------------------------------------------- slow
DRIVER = textwrap.dedent("""\
    import json, sys
    from itwinai_ray.backends.ray import driver as ray_backend, reaper as _ray_reaper
    assert ray_backend.ensure_ray(num_cpus=1)
    root = next(iter(_ray_reaper._watchdogs))
    print("UP " + json.dumps({"root": root, "watchdog": _ray_reaper._watchdogs[root].pid}),
          flush=True)
    if sys.stdin.read() == "shutdown":
        ray_backend.shutdown()
        print("DOWN " + json.dumps({"watchdogs": len(_ray_reaper._watchdogs)}), flush=True)
""")


@pytest.fixture
def short_base() -> Iterator[Path]:
    """A short ``$RAY_TMPDIR``: Ray's unix socket paths under it must stay below 108 chars."""
    base = Path(tempfile.mkdtemp(prefix="rr", dir="/tmp"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _start_driver(base: Path, log: Path) -> tuple[subprocess.Popen, dict]:
    """A driver with a local Ray up and both of the raylet's agents running."""
    env = subprocess_env(RAY_TMPDIR=str(base), HOME=str(base / "home"))
    env.pop("RAY_ADDRESS", None)
    with open(log, "w") as err:
        driver = subprocess.Popen([PYTHON, "-c", DRIVER], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=err, text=True)
    line = driver.stdout.readline()
    assert line.startswith("UP "), log.read_text()[-3000:]
    info = json.loads(line[3:])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = {p.name() for p in _ray_reaper.session_processes(info["root"])}
        if {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names:
            return driver, info
        time.sleep(0.5)
    driver.kill()
    raise AssertionError(f"the raylet's agents did not start: {names}")


def _alive(proc: psutil.Process) -> bool:
    """Running, and not a zombie (its parent died; init reaps it when it gets round to it)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_all_gone(root: str, procs: list[psutil.Process], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not os.path.exists(root) and not any(_alive(p) for p in procs) \
                and not _ray_reaper.session_processes(root):
            return
        time.sleep(0.5)
    left = [f"{p.pid} {p.name()}" for p in procs if _alive(p)]
    raise AssertionError(f"after {timeout_s} s: root exists={os.path.exists(root)}, "
                         f"alive={left}, session={_ray_reaper.session_processes(root)}")


@pytest.mark.timeout(180)
def test_killed_driver_takes_its_local_ray_along(short_base: Path, tmp_path: Path) -> None:
    driver, info = _start_driver(short_base, tmp_path / "driver.log")
    procs = _ray_reaper.session_processes(info["root"])
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    # without the watchdog the two agents lived about 60 s more (a GCS call with a timeout)
    _wait_all_gone(info["root"], procs + [psutil.Process(info["watchdog"])], timeout_s=20)


@pytest.mark.timeout(180)
def test_next_start_reaps_what_a_killed_driver_and_watchdog_left(short_base: Path,
                                                                   tmp_path: Path) -> None:
    driver, info = _start_driver(short_base, tmp_path / "driver.log")
    procs = _ray_reaper.session_processes(info["root"])
    os.kill(info["watchdog"], signal.SIGKILL)  # e.g. `kill -9` of the whole process tree
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    time.sleep(2)
    assert any(_alive(p) for p in procs), "nothing left to reap: the test proves nothing"
    assert _ray_reaper.reap_stale(str(short_base)) == [info["root"]]
    _wait_all_gone(info["root"], procs, timeout_s=20)


@pytest.mark.timeout(180)
def test_shutdown_leaves_no_watchdog_behind(short_base: Path, tmp_path: Path) -> None:
    driver, info = _start_driver(short_base, tmp_path / "driver.log")
    watchdog = psutil.Process(info["watchdog"])
    out, _ = driver.communicate("shutdown", timeout=120)
    assert driver.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]
    assert json.loads(out.split("DOWN ", 1)[1]) == {"watchdogs": 0}
    # the driver waited for it: no process, not even a zombie
    assert not watchdog.is_running()
    _wait_all_gone(info["root"], [], timeout_s=10)
