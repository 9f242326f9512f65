"""One row of the searcher / scheduler tables (see :mod:`itwinai_ray.tuning.algorithms`), and
the neutral spec of one searcher or scheduler that the core resolves and a backend builds."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from itwinai_ray.errors import ConfigurationError


@dataclass(frozen=True)
class BuildContext:
    """What a ``prepare`` hook may look at: the objective and the built search space."""

    name: str
    metric: Any
    mode: Any
    space: Mapping[str, Any] = field(default_factory=dict)
    max_t: int | None = None
    max_concurrent: int | None = None  # the ConcurrencyLimiter's, if any
    num_samples: int | None = None  # the number of trials, when known


@dataclass(frozen=True)
class AlgorithmSpec:
    """How to build one searcher or scheduler.

    Attributes:
        import_path: dotted path of the Ray class; ``None`` means Ray's built-in random/grid
            generator (no ``search_alg``).
        defaults: keyword arguments used unless the user gives them.
        package: pip package that must be installed, if any.
        extra: itwinai-ray extra that installs ``package``.
        supports_grid: whether ``grid_search`` values can be given to this searcher.
        description: one line for ``--help`` and docs.
        max_concurrent: wrap the searcher in ``ConcurrencyLimiter(max_concurrent)``.
        epochs_arg: argument that defaults to the trainer's number of epochs (ASHA: ``max_t``).
        grid: convert ``choice`` to ``grid_search`` (the ``grid`` searcher).
        check: validates the effective arguments; raises ConfigurationError.
        more_packages: further import names needed besides ``package``.
        multi_objective: accepts several metrics (``metric: [a, b]``).
        prepare: ``prepare(kwargs, ctx) -> kwargs`` turns YAML values into Ray arguments
            (a sampler name into an Optuna sampler, the search space into PBT mutations).
        blocker: returns why this algorithm cannot work in this environment, or None.
        needs_space: the scheduler's ``prepare`` reads the search space.
    """

    import_path: str | None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    package: str | None = None
    extra: str | None = None
    supports_grid: bool = True
    description: str = ""
    max_concurrent: int | None = None
    epochs_arg: str | None = None
    grid: bool = False
    check: Callable[[str, Mapping[str, Any]], None] | None = None
    more_packages: tuple[str, ...] = ()
    multi_objective: bool = False
    prepare: Callable[[dict[str, Any], BuildContext], dict[str, Any]] | None = None
    blocker: Callable[[], str | None] | None = None
    needs_space: bool = False


@dataclass(frozen=True)
class AlgorithmChoice:
    """A searcher or scheduler as the core resolved it from the YAML: what a backend builds
    (the Ray backend: ``backends/ray/algorithms.py``). No backend object, except ``built``.

    Attributes:
        what: ``"searcher"`` or ``"scheduler"``.
        name: the table's short name (also for a ``_target_`` / ``class_path`` whose class
            is a row's, which the backend tells); None for any other class path; a built
            object's row name, else its class name.
        path: the class to build; None: the backend's own random/grid generator.
        kwargs: the user's arguments (``seed`` renamed to the class's own), without
            ``max_concurrent``.
        metric, mode: the objective, given to the class unless ``kwargs`` set it.
        max_t: the trainer's epochs (ASHA's ``max_t``, PBT's perturbation interval).
        num_samples: the number of trials, when known (Nevergrad's ``budget``).
        max_concurrent: the searcher's concurrency limit (the user's, else the table's).
        user_limit: ``max_concurrent`` was given by the user.
        built: an object the user built in Python: used as is.
    """

    what: str
    name: str | None
    path: str | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    metric: Any = None
    mode: Any = None
    max_t: int | None = None
    num_samples: int | None = None
    max_concurrent: int | None = None
    user_limit: bool = False
    built: Any = None

    @property
    def label(self) -> str:
        """The name for messages: the short name, else the class path's last part."""
        if self.name is not None:
            return self.name
        if self.built is not None:
            return type(self.built).__name__
        return str(self.path).rpartition(".")[2]


def entry_of_class(cls: type, table: Mapping[str, AlgorithmSpec]
                   ) -> tuple[str, AlgorithmSpec | None]:
    """The table row whose class is ``cls`` (only among modules already imported), else
    ``(cls.__name__, None)``."""
    for name, alg in table.items():
        if alg.import_path:
            module, _, attr = alg.import_path.rpartition(".")
            if getattr(sys.modules.get(module), attr, None) is cls:
                return name, alg
    return cls.__name__, None


def require(name: str, ok: bool, what: str, kind: str = "Scheduler") -> None:
    """Raise ``ConfigurationError("<kind> '<name>': <what>.")`` unless ``ok``."""
    if not ok:
        raise ConfigurationError(f"{kind} {name!r}: {what}.")
