"""Helpers that both test tiers import by name (``from testkit import ...``): the repo root,
the venv's Python, a free port, the environment for child processes and a real local Ray.

They live here, not in a conftest.py: tests/, tests/unit/ and tests/e2e/ each have one, and
every one of them is imported as the module ``conftest``, so ``from conftest import`` would
get whichever pytest loaded last. tests/ is on sys.path (pytest puts each rootless conftest's
folder there), on PYTHONPATH for child processes (:func:`subprocess_env`) and for Ray workers
(:func:`local_ray`), so the trainer modules next to this file import by name everywhere."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
CONFIGS = TESTS / "configs"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: the repo on PYTHONPATH, tests importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


@contextmanager
def local_ray(num_cpus: int) -> Iterator[Any]:
    """A real local Ray with ``num_cpus`` logical CPUs (overcommitted on purpose: 2 trials x
    2 workers fit on 2 cores), no dashboard, one thread per worker, and tests/ and tests/e2e/
    importable by its workers: the trainers defined in tests/, and the functions and classes
    of the test module itself, which Ray pickles by reference to the module name pytest gave
    it (``test_results_cli``, imported from tests/e2e/). Shut down, and the environment
    restored, on exit. tests/e2e/conftest.py's ``ray_cluster`` fixture uses it per module."""
    import ray

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
            str(TESTS), str(TESTS / "e2e"), os.environ.get("PYTHONPATH")])))
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        try:
            yield ray
        finally:
            ray.shutdown()
