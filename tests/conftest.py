"""Fixtures both tiers use: small real datasets. Helpers that tests import by name (ROOT,
PYTHON, subprocess_env, local_ray, ...) are in testkit.py; tests/unit/conftest.py keeps the
unit tier free of Ray and subprocesses, tests/e2e/conftest.py has the shared local Ray."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits():
    """The real digits dataset (offline, shipped with scikit-learn)."""
    from itwinai_ray.examples.digits import DigitsGetter

    return DigitsGetter().execute()


@pytest.fixture(scope="session")
def digits_split(digits):
    from itwinai_ray.components import DataSplitter

    return DataSplitter(0.7, 0.15, 0.15, rnd_seed=0).execute(digits)
