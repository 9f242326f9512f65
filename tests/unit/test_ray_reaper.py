"""No orphans (issue 15, point 10): the pure parts of the reaper (driver records, pid reuse,
which roots are stale, which processes belong to a root). A real driver of a real local Ray,
SIGKILLed: tests/e2e/test_ray_reaper_e2e.py.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import psutil

from itwinai_ray.backends.ray import reaper as _ray_reaper
from itwinai_ray.backends.ray import security as _ray_security

NO_SUCH_PID = 2**22 + 4321  # above the largest pid_max Linux allows


def _root(base: Path, name: str, host: str | None = None, pid: int = NO_SUCH_PID,
          create_time: float = 1.0) -> Path:
    root = base / name
    root.mkdir()
    if host is not None:
        (root / _ray_reaper.DRIVER_FILE).write_text(
            json.dumps({"host": host, "pid": pid, "create_time": create_time}))
    return root


# ---------------------------------------------------------------------------- fast
def test_driver_file_round_trip_and_unreadable(tmp_path: Path) -> None:
    _ray_reaper.write_driver_file(str(tmp_path), 123, 456.5)
    record = _ray_reaper.read_driver_file(str(tmp_path))
    assert record == {"host": socket.gethostname(), "pid": 123, "create_time": 456.5}
    (tmp_path / _ray_reaper.DRIVER_FILE).write_text("{not json")
    assert _ray_reaper.read_driver_file(str(tmp_path)) is None
    (tmp_path / _ray_reaper.DRIVER_FILE).write_text(json.dumps({"pid": 1}))
    assert _ray_reaper.read_driver_file(str(tmp_path)) is None
    assert _ray_reaper.read_driver_file(str(tmp_path / "missing")) is None


def test_driver_alive_checks_create_time_against_pid_reuse() -> None:
    me = psutil.Process()
    assert _ray_reaper.driver_alive(me.pid, me.create_time())
    # the same pid with another start time is another process under a reused pid
    assert not _ray_reaper.driver_alive(me.pid, me.create_time() - 3600)
    assert not _ray_reaper.driver_alive(NO_SUCH_PID, 1.0)


def test_stale_roots_are_dead_drivers_of_this_host_only(tmp_path: Path) -> None:
    host = "this-host"
    dead = _root(tmp_path, "ir-dead", host, pid=11)
    _root(tmp_path, "ir-live", host, pid=22)
    _root(tmp_path, "ir-elsewhere", "other-host", pid=11)  # shared $RAY_TMPDIR: not ours
    _root(tmp_path, "ir-norecord")  # an older version's root, or one being set up
    _root(tmp_path, "other-dead", host, pid=11)  # not a session root
    (tmp_path / "ir-file").write_text("x")
    (tmp_path / "ir-link").symlink_to(dead)
    alive = {11: False, 22: True}
    stale = _ray_reaper.stale_roots(str(tmp_path), host=host,
                                    alive=lambda pid, _ct: alive[pid])
    assert stale == [str(dead)]
    assert _ray_reaper.stale_roots(str(tmp_path / "missing"), host=host) == []


def test_mentions_root_matches_whole_path_components() -> None:
    marks = _ray_reaper.root_marks("/b/ir-abc")
    assert _ray_reaper.mentions_root(["raylet", "--temp-dir=/b/ir-abc/r"], [], marks)
    assert _ray_reaper.mentions_root(["ray::DashboardAgent"],
                                     ["/b/ir-abc/r/session_1/logs/dashboard_agent.log"], marks)
    # the agents rename their process title: without open files under the root, not ours
    assert not _ray_reaper.mentions_root(["ray::DashboardAgent"], ["/var/log/x"], marks)
    # another session whose name starts with this one's
    assert not _ray_reaper.mentions_root(["--temp-dir=/b/ir-abcd/r"], ["/b/ir-abcd/r/x"], marks)


def test_reap_stale_removes_dead_roots_and_logs_once(tmp_path: Path, caplog) -> None:
    host = socket.gethostname()
    dead = _root(tmp_path, "ir-dead", host)
    (dead / "r" / "session_x" / "logs").mkdir(parents=True)
    me = psutil.Process()
    live = _root(tmp_path, "ir-live", host, pid=me.pid, create_time=me.create_time())
    with caplog.at_level(logging.INFO, logger=_ray_reaper.__name__):
        assert _ray_reaper.reap_stale(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and live.exists()
    lines = [r for r in caplog.records if r.name == _ray_reaper.__name__]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert str(dead) in lines[0].getMessage() and "0 process(es)" in lines[0].getMessage()
    caplog.clear()
    assert _ray_reaper.reap_stale(str(tmp_path)) == [] and not caplog.records


def test_watch_returns_when_root_is_gone_and_reaps_when_driver_is(tmp_path: Path) -> None:
    me = psutil.Process()
    _ray_reaper.watch(str(tmp_path / "gone"), me.pid, me.create_time(), poll_s=0.01)
    root = _root(tmp_path, "ir-x", socket.gethostname())
    _ray_reaper.main([str(root), str(NO_SUCH_PID), "1.0"])
    assert not root.exists()


def test_next_local_start_reaps_killed_drivers_roots(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setattr(_ray_reaper, "guard", lambda root: None)  # no watchdog process here
    dead = _root(tmp_path, "ir-dead", socket.gethostname())
    temp_dir = _ray_security.secure_local_start()
    try:
        assert not dead.exists() and Path(temp_dir).parent.parent == tmp_path
    finally:
        _ray_security.remove_temp_dir()
    _ray_reaper.stop_watchdog(str(tmp_path / "unknown"))  # no watchdog: nothing to do
