"""Read a YAML file, apply overrides, resolve ``${...}`` and build the selected pipeline.

One file may hold several pipelines, picked by ``pipe_key`` (dotted keys allowed, e.g.
``pipelines.training``). ``steps`` keeps a part of the pipeline: ``"0:2"``, ``":-1"``, an
index, or a step name when the steps are written as a mapping. Unselected steps are never
constructed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigurationError
from .instantiate import instantiate
from .overrides import apply_overrides
from .resolvers import YamlLoader, did_you_mean, resolve

DEFAULT_PIPE_KEY = "training_pipeline"
StepsSpec = str | int | slice | None


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` (``1e-3`` is read as a float)."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigurationError(f"Configuration file not found: {file.absolute()} (current "
                                 f"directory: {os.getcwd()}).") from exc
    except OSError as exc:
        raise ConfigurationError(f"Cannot read configuration file {file.absolute()}: "
                                 f"{exc.strerror or exc}.") from exc
    try:
        data = yaml.load(text, Loader=YamlLoader)  # noqa: S506 - YamlLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigurationError(_yaml_error_message(file, exc)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{file}: the top level must be a mapping of keys to values, "
                                 f"got a {type(data).__name__}.")
    return data


def _yaml_error_message(file: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{file}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(file)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else problem
    return f"YAML syntax error in {where}: {detail}."


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The whole file as a plain dict: overrides applied, then interpolations resolved."""
    resolved = resolve(apply_overrides(load_yaml(path), overrides))
    return resolved if isinstance(resolved, dict) else {}


def load_pipeline(path: str | os.PathLike[str], pipe_key: str = DEFAULT_PIPE_KEY,
                  overrides: Sequence[str] = (), steps: StepsSpec = None) -> Any:
    """Build the pipeline at ``pipe_key`` in ``path``, keeping only ``steps`` if given."""
    raw = apply_overrides(load_yaml(path), overrides)
    return build_pipeline(raw, pipe_key, steps=steps, source=str(path))


def build_pipeline(raw: dict[str, Any], pipe_key: str = DEFAULT_PIPE_KEY,
                   steps: StepsSpec = None, source: str = "the configuration") -> Any:
    """Build the pipeline at ``pipe_key`` of an already loaded (unresolved) config."""
    key = find_pipe_key(raw, pipe_key, source=source)
    node = resolve(raw, key)
    if steps is not None:
        node = select_steps(node, steps, pipe_key)
    pipeline = instantiate(node, location=pipe_key)
    if not callable(getattr(pipeline, "execute", None)):
        raise ConfigurationError(
            f"'{pipe_key}' in {source} built a {type(pipeline).__name__}, which has no "
            "execute() method; point --pipe-key at a pipeline (class_path or _target_ of a "
            "Pipeline).")
    return pipeline


def find_pipe_key(cfg: dict[str, Any], pipe_key: str, source: str = "the configuration") -> str:
    """The OmegaConf key of ``pipe_key`` in ``cfg`` (a top-level key, else a dotted path)."""
    if pipe_key in cfg:
        return pipe_key if "." not in pipe_key else _quote_key(pipe_key)
    node: Any = cfg
    for part in pipe_key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and re.fullmatch(r"\d+", part) and int(part) < len(node):
            node = node[int(part)]
        else:
            candidates = pipeline_keys(cfg)
            listed = ", ".join(candidates) if candidates else "none found"
            raise ConfigurationError(
                f"Pipeline key '{pipe_key}' not found in {source}. Keys that look like "
                f"pipelines (have class_path or _target_): {listed}."
                f"{did_you_mean(pipe_key, candidates or list(cfg))} Select one with --pipe-key.")
    return pipe_key


def _quote_key(key: str) -> str:
    # OmegaConf.select reads a top-level key that itself contains dots as '[key]'.
    return f"[{key}]"


def pipeline_keys(cfg: dict[str, Any]) -> list[str]:
    """Top-level keys (and their direct children) whose value is a class_path/_target_ node."""
    found: list[str] = []
    for key, value in cfg.items():
        if _is_class_node(value):
            found.append(str(key))
        elif isinstance(value, dict):
            found.extend(f"{key}.{k}" for k, v in value.items() if _is_class_node(v))
    return found


def _is_class_node(value: Any) -> bool:
    return isinstance(value, dict) and ("class_path" in value or "_target_" in value)


def parse_steps(spec: StepsSpec) -> int | slice | str | None:
    """``"0:2"`` / ``":-1"`` -> slice, ``"2"`` / ``2`` -> int, other strings -> a step name."""
    if spec is None or isinstance(spec, slice):
        return spec
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise ConfigurationError(f"Invalid steps {spec!r}: use a slice like '0:2', an index or "
                                 "a step name.")
    if isinstance(spec, int):
        return spec
    text = spec.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if ":" in text:
        parts = text.split(":")
        if len(parts) > 3 or not all(re.fullmatch(r"\s*(-?\d+)?\s*", p) for p in parts):
            raise ConfigurationError(f"Invalid steps '{spec}': a slice is start:stop[:step] with "
                                     "integers, e.g. '0:2', ':-1' or '1:'.")
        values = [int(p) if p.strip() else None for p in parts]
        if len(values) == 3 and values[2] == 0:
            raise ConfigurationError(f"Invalid steps '{spec}': the slice step cannot be zero.")
        return slice(*values)
    if not text:
        raise ConfigurationError("Invalid steps '': use a slice like '0:2', an index or a name.")
    return text


def select_steps(node: Any, spec: StepsSpec, location: str) -> Any:
    """Return a copy of the pipeline node that keeps only the selected steps."""
    selector = parse_steps(spec)
    args, where = _steps_container(node, location)
    steps = args["steps"]
    if isinstance(steps, dict):
        names = list(steps)
        if isinstance(selector, str):
            if selector not in steps:
                raise ConfigurationError(
                    f"Invalid steps '{spec}': no step named '{selector}' in {where}. Steps: "
                    f"{', '.join(map(str, names))}.{did_you_mean(selector, names)}")
            chosen = [selector]
        else:
            chosen = _pick(names, selector, spec, where)
        new_steps: Any = {name: steps[name] for name in chosen}
    elif isinstance(steps, list):
        if isinstance(selector, str):
            names = [_step_name(step) for step in steps]
            if selector not in names:
                raise ConfigurationError(
                    f"Invalid steps '{spec}': no step named '{selector}' in {where}, a list "
                    f"whose steps are named {', '.join(map(str, names))} (their 'name' argument "
                    f"or class name). Use one of these, an index or a slice like '0:2'."
                    f"{did_you_mean(selector, names)}")
            selector = names.index(selector)
        new_steps = _pick(steps, selector, spec, where)
    else:
        raise ConfigurationError(f"Invalid steps '{spec}': {where} is a "
                                 f"{type(steps).__name__}, not a list or mapping of steps.")
    return _with_steps(node, new_steps)


def _step_name(step: Any) -> Any:
    """The name the Pipeline gives a list step: its ``name`` argument, else its class name."""
    if not isinstance(step, dict):
        return None
    args = step.get("init_args") or {} if "class_path" in step else step
    name = args.get("name") if isinstance(args, dict) else None
    path = step.get("class_path") or step.get("_target_")
    return name or (str(path).rsplit(".", 1)[-1] if path else None)


def _steps_container(node: Any, location: str) -> tuple[dict[str, Any], str]:
    if isinstance(node, dict):
        args = node.get("init_args") if "class_path" in node else node
        if isinstance(args, dict) and "steps" in args:
            sub = "init_args.steps" if "class_path" in node else "steps"
            return args, f"'{location}.{sub}'"
    raise ConfigurationError(f"Cannot select steps: the pipeline at '{location}' has no "
                             "'steps' argument.")


def _pick(items: list[Any], selector: int | slice | None, spec: StepsSpec, where: str) -> list:
    if isinstance(selector, int):
        if not -len(items) <= selector < len(items):
            raise ConfigurationError(f"Invalid steps '{spec}': index {selector} is out of range; "
                                     f"{where} has {len(items)} steps.")
        return [items[selector]]
    chosen = items[selector]
    if not chosen:
        raise ConfigurationError(f"Invalid steps '{spec}': it selects no step; {where} has "
                                 f"{len(items)} steps (indices 0 to {len(items) - 1}).")
    return chosen


def _with_steps(node: dict[str, Any], steps: Any) -> dict[str, Any]:
    if "class_path" in node:
        return {**node, "init_args": {**node["init_args"], "steps": steps}}
    return {**node, "steps": steps}
