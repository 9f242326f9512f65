"""End-to-end tier: real local Ray, torchrun, SLURM, MLflow server, browser.

``ray_cluster``: a real local Ray with the module's ``RAY_CPUS`` logical CPUs (default 4;
overcommitted on purpose, see testkit.local_ray). Modules that ask for the same size run one
after another (``pytest_collection_modifyitems``) and share one Ray, started at the first test
that uses it. It is shut down at the end of a module unless the next module uses the same size,
so a module that starts its own Ray, or runs the CLI, never finds one left over from another."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from testkit import local_ray

_DEFAULT_CPUS = 4


def _ray_cpus(item: pytest.Item | None) -> int | None:
    """The Ray size ``item`` needs from this file's ``ray_cluster``, or None when it does not
    use it (a module may define a ``ray_cluster`` of its own: then it is not shared)."""
    if (item is None or "ray_cluster" not in getattr(item, "fixturenames", ())
            or "ray_cluster" in vars(item.module)):
        return None
    return getattr(item.module, "RAY_CPUS", _DEFAULT_CPUS)


class _SharedRay:
    """The one local Ray of the fixture, with its size, until :meth:`close`."""

    def __init__(self) -> None:
        self.cpus: int | None = None
        self._stack: contextlib.ExitStack | None = None
        self.ray: Any = None

    def get(self, cpus: int) -> Any:
        if self.cpus != cpus:
            self.close()
            self._stack = contextlib.ExitStack()
            self.ray = self._stack.enter_context(local_ray(num_cpus=cpus))
            self.cpus = cpus
        return self.ray

    def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self.cpus, self.ray = self._stack, None, None, None
            stack.close()


_SHARED = _SharedRay()
#: The Ray size each module's tests ask for (None: none of them uses ``ray_cluster``).
_MODULE_CPUS: dict[Any, int | None] = {}


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Within tests/e2e, the modules that use ``ray_cluster`` run together, grouped by size, at
    the place of the first of them; every other module keeps its place. Tests inside a module
    keep their order."""
    modules: dict[Any, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.module, []).append(item)
    sizes = {m: next((c for c in map(_ray_cpus, its) if c is not None), None)
             for m, its in modules.items()}
    _MODULE_CPUS.update(sizes)
    if sum(s is not None for s in sizes.values()) < 2:
        return
    ordered: list[Any] = []
    for module, size in sizes.items():
        if module in ordered:
            continue
        if size is None or "/e2e/" not in str(module.__file__).replace("\\", "/"):
            ordered.append(module)
            continue
        same = [m for m, s in sizes.items() if s is not None and m not in ordered
                and "/e2e/" in str(m.__file__).replace("\\", "/")]
        ordered.extend(sorted(same, key=lambda m: sizes[m]))  # stable: file order per size
    items[:] = [item for module in ordered for item in modules[module]]


@pytest.fixture
def ray_cluster(request: pytest.FixtureRequest):
    yield _SHARED.get(_ray_cpus(request.node) or _DEFAULT_CPUS)


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """At the end of a module, shut the shared Ray down unless the next module uses it at the
    same size."""
    if _SHARED.cpus is None or (nextitem is not None and nextitem.module is item.module):
        return
    if nextitem is None or _MODULE_CPUS.get(nextitem.module) != _SHARED.cpus:
        _SHARED.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SHARED.close()
