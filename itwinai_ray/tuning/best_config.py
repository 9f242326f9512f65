"""Write the best configuration of an HPO run as a pipeline YAML that is ready to run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def hpo_step_location(config: Mapping[str, Any], pipe_key: str) -> list[Any] | None:
    """Location (list of keys) of the first RayTorchTrainer step of the pipeline config, or
    None; the config is read, never built."""
    from ..integrations.steps import find_hpo_step

    node, location = _pipeline_node(config, pipe_key)
    steps, sub = _steps(node)
    found = find_hpo_step(steps)
    return [*location, *sub, found[0]] if found is not None else None


def write_best_config(results: HPOResults, config: Mapping[str, Any], pipe_key: str,
                      trainer: Any, path: str | Path | None = None) -> Path | None:
    """Fill the best values into ``config`` and write it; returns the file, or None."""
    location = hpo_step_location(config, pipe_key)
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
