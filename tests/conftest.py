"""Shared fixtures: small real datasets, and the venv's bin directory for subprocess tests."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

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
