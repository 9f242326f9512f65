"""Unit tier: no Ray cluster, no subprocess; the whole tier runs in under 2 minutes.

Every unit test runs with ``ray.init`` and process creation (``subprocess.Popen``,
``os.fork``, ``os.posix_spawn``) replaced by a function that fails the test, so a test that
needs a real Ray or a child process is caught here and belongs in tests/e2e/."""

from __future__ import annotations

import os
import platform
import subprocess

import pytest
import ray


def _refuse(what: str):
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a unit test must not {what}; move it to tests/e2e/")
    return refuse


# platform.uname() runs `uname -p` once per process and caches it; MLflow calls it when it is
# imported. Fill the cache now, so that importing MLflow inside a unit test starts nothing.
platform.platform()

# matplotlib builds its font cache at its first import on a machine, running `fc-list`. Build
# it now (a fresh machine, a clean CI), so that a unit test drawing a figure starts nothing.
import matplotlib.font_manager  # noqa: E402, F401


@pytest.fixture(autouse=True, scope="module")
def _no_ray_and_no_subprocess():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray, "init", _refuse("start Ray (ray.init)"))
        mp.setattr(subprocess.Popen, "__init__", _refuse("start a subprocess"))
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
            if hasattr(os, name):
                mp.setattr(os, name, _refuse(f"start a process (os.{name})"))
        yield
