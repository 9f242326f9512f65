"""Write the best configuration of an HPO run as a pipeline YAML that is ready to run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .results import HPOResults, best_pipeline_config, write_yaml

log = logging.getLogger(__name__)


def _steps(node: Mapping[str, Any]) -> tuple[Any, list[str]]:
    args = node.get("init_args", {}) if "class_path" in node else node
    steps = args.get("steps") if isinstance(args, Mapping) else None
    sub = ["init_args", "steps"] if "class_path" in node else ["steps"]
    return steps, sub


def _pipeline_node(config: Mapping[str, Any], pipe_key: str) -> tuple[Any, list[str]]:
    if pipe_key in config:
        return config[pipe_key], [pipe_key]
    node: Any = config
    for part in pipe_key.split("."):
        node = node[part]
    return node, pipe_key.split(".")


def find_hpo_step(config: Mapping[str, Any], pipe_key: str) -> list[Any] | None:
    """Location (list of keys) of the first RayTorchTrainer step of the pipeline, or None."""
    from ..config.instantiate import resolve_target
    from ..trainer.ray_trainer import RayTorchTrainer

    node, location = _pipeline_node(config, pipe_key)
    steps, sub = _steps(node)
    items = steps.items() if isinstance(steps, Mapping) else enumerate(steps or [])
    for key, step in items:
        path = step.get("class_path") or step.get("_target_") if isinstance(step, Mapping) else None
        if not path:
            continue
        try:
            cls = resolve_target(path)
        except ConfigurationError as exc:  # a step that does not import is not ours
            log.debug("Best config: step %r skipped (%s).", key, exc)
            continue
        if isinstance(cls, type) and issubclass(cls, RayTorchTrainer):
            return [*location, *sub, key]
    return None


def write_best_config(results: HPOResults, config: Mapping[str, Any], pipe_key: str,
                      trainer: Any, path: str | Path | None = None) -> Path | None:
    """Fill the best values into ``config`` and write it; returns the file, or None."""
    location = find_hpo_step(config, pipe_key)
    if location is None:
        log.warning("No RayTorchTrainer step found in '%s': best config not written.", pipe_key)
        return None
    from .trial import attribute_keys, config_keys

    target = trainer.target
    values = results.best_config
    as_attr = attribute_keys(target) - config_keys(target)  # as apply_trial_values merges
    in_config = [k for k in values if k not in as_attr]
    best = best_pipeline_config(config, location, values, in_config,
                                unwrap=trainer.trainer is not None)
    path = Path(path or Path(results.experiment_path or ".") / "best_config.yaml")
    return write_yaml(best, path)
