"""Shared fixtures: small real datasets, a local Ray per test module, the venv's Python for
subprocess tests."""

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


@pytest.fixture(scope="session")
def digits():
    """The real digits dataset (offline, shipped with scikit-learn)."""
    from itwinai_ray.examples.digits import DigitsGetter

    return DigitsGetter().execute()


@pytest.fixture(scope="session")
def digits_split(digits):
    from itwinai_ray.components import DataSplitter

    return DataSplitter(0.7, 0.15, 0.15, rnd_seed=0).execute(digits)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: the repo on PYTHONPATH, tests importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                         env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


PYTHON = sys.executable


@contextmanager
def local_ray(num_cpus: int) -> Iterator[Any]:
    """A real local Ray with ``num_cpus`` logical CPUs (overcommitted on purpose: 2 trials x
    2 workers fit on 2 cores), no dashboard, one thread per worker, and tests/ importable by
    its workers (trainers defined there). Shut down, and the environment restored, on exit.
    Use it in a module-scoped ``ray_cluster`` fixture."""
    import ray

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
            str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        try:
            yield ray
        finally:
            ray.shutdown()
