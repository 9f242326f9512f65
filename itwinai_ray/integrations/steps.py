"""Which steps of a pipeline drive HPO: the RayTorchTrainer steps, built or configured.

The one place that answers "which step is the HPO step" for the CLI (a built pipeline), the
best-config writer (a pipeline config, never built) and the run_trial path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ..config import instantiate
from ..errors import ConfigurationError
from .ray_trainer import RayTorchTrainer

log = logging.getLogger(__name__)


def hpo_steps(steps: Any) -> Iterator[tuple[Any, Any]]:
    """Each RayTorchTrainer step among ``steps``, as ``(key, step)`` in order.

    ``steps`` is a built pipeline's steps or a pipeline config's, a list or a ``{name: step}``
    mapping (None: no steps). A built step counts when it is a RayTorchTrainer; a configured
    one (``class_path`` or ``_target_``) when the class it names is one (imported, not built).
    """
    items = steps.items() if isinstance(steps, Mapping) else enumerate(steps or [])
    for key, step in items:
        if _is_hpo_step(key, step):
            yield key, step


def find_hpo_step(steps: Any) -> tuple[Any, Any] | None:
    """The first RayTorchTrainer step among ``steps`` as ``(key, step)``, or None."""
    return next(hpo_steps(steps), None)


def _is_hpo_step(key: Any, step: Any) -> bool:
    if isinstance(step, RayTorchTrainer):
        return True
    if not isinstance(step, Mapping):
        return False
    path = step.get("class_path") or step.get("_target_")
    if not path:
        return False
    try:
        cls = instantiate.resolve_target(path)
    except ConfigurationError as exc:  # a step that does not import is not ours
        log.debug("Step %r is not an HPO step (%s).", key, exc)
        return False
    return isinstance(cls, type) and issubclass(cls, RayTorchTrainer)
