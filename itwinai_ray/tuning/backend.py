"""The one module of the HPO core that calls a backend (today Ray's, through
:mod:`itwinai_ray.backends.ray.entry`); every other module of :mod:`itwinai_ray.tuning`
reaches the backend through these functions (``tests/unit/test_architecture.py``).

The core hands over neutral specs (:mod:`.domains`, :class:`~._algorithm_spec.AlgorithmChoice`,
:class:`~.experiment_spec.ExperimentSpec`); the backend builds its own objects from them. What
only the backend can check (the arguments of a Ray searcher's constructor, Ray's own checks of
a domain) it checks here, before it starts, so bad input still fails fast.
The backend package is imported on the first call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ._algorithm_spec import AlgorithmChoice
    from .domains import Domain
    from .experiment_spec import ExperimentSpec


def run(spec: ExperimentSpec, ray_init: dict[str, Any]) -> Any:
    """Run one experiment on the backend (connecting to it, or starting a local one)."""
    from itwinai_ray.backends.ray import entry

    return entry.run_with_ray(spec, ray_init)


def experiment_to_resume(storage: str, name: str | None, prefix: str, *,
                         required: bool) -> str | None:
    """The experiment under ``storage`` that ``--resume`` continues (None: none)."""
    from itwinai_ray.backends.ray import entry

    return entry.experiment_to_resume(storage, name, prefix, required=required)


def neutral_domain(value: Any) -> Domain | None:
    """The neutral domain of a backend's own domain object (a ``ray.tune`` domain built in
    Python); None when ``value`` is none."""
    from itwinai_ray.backends.ray import entry

    return entry.neutral_domain(value)


def check_domain(domain: Domain) -> None:
    """Raise ValueError or AssertionError where the backend refuses ``domain``."""
    from itwinai_ray.backends.ray import entry

    entry.check_domain(domain)


def table_row(what: str, path: str) -> str | None:
    """The short name of the table row whose class is at ``path`` (a ``_target_`` such as
    ``ray.tune.schedulers.ASHAScheduler``), None when it is no row.

    Raises:
        ConfigurationError, MissingDependencyError: the class cannot be imported, or it is
            not a ``what`` of the backend.
    """
    from itwinai_ray.backends.ray import entry

    return entry.table_row(what, path)


def check_algorithm(choice: AlgorithmChoice, space: Mapping[str, Any]) -> None:
    """Build the searcher or scheduler once, now, and drop it: its constructor's checks and
    the searcher's conversion of ``space`` fail before the backend starts.

    Raises:
        ConfigurationError, MissingDependencyError, SearchSpaceError: named, as the core's.
    """
    from itwinai_ray.backends.ray import entry

    entry.check_algorithm(choice, space)
