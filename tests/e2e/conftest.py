"""End-to-end tier: real local Ray, torchrun, SLURM, MLflow server, browser.

``ray_cluster``: one real local Ray per test module, with the module's ``RAY_CPUS`` logical
CPUs (default 4; overcommitted on purpose, see testkit.local_ray), shut down after the
module's last test."""

from __future__ import annotations

import pytest
from testkit import local_ray


@pytest.fixture(scope="module")
def ray_cluster(request: pytest.FixtureRequest):
    with local_ray(num_cpus=getattr(request.module, "RAY_CPUS", 4)) as ray:
        yield ray
