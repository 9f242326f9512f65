"""Hydra-style command-line overrides applied to the raw YAML, before interpolation.

``a.b.2.c=3`` sets an existing key (integer segments index lists; ``a.b[2].c`` works too),
``+a.b=1`` adds a new key, ``++a.b=1`` adds or sets, ``~a.b`` deletes. Values are parsed as
YAML, so ``3`` is an int, ``1e-3`` a float, ``[1,2]`` a list and ``null`` is None.
Because overrides act before ``${...}`` is resolved, overriding a top-level variable
propagates to every place that references it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from .resolvers import did_you_mean, parse_scalar

_SET, _ADD, _FORCE, _DELETE = "set", "add", "add-or-set", "delete"
_PREFIXES = (("++", _FORCE), ("+", _ADD), ("~", _DELETE))


@dataclass(frozen=True)
class Override:
    """One parsed override: ``kind`` is set / add / add-or-set / delete."""

    text: str
    kind: str
    path: tuple[str, ...]
    value: Any = None
    has_value: bool = True


def parse_override(text: str) -> Override:
    """Parse ``key=value``, ``+key=value``, ``++key=value`` or ``~key``."""
    body, kind = text.strip(), _SET
    for prefix, prefix_kind in _PREFIXES:
        if body.startswith(prefix):
            body, kind = body[len(prefix):], prefix_kind
            break
    key, sep, raw_value = body.partition("=")
    if not sep and kind != _DELETE:
        raise ConfigurationError(
            f"Malformed override '{text}': expected key=value (e.g. training_pipeline."
            "init_args.steps.0.init_args.batch_size=32), +key=value to add a key or ~key "
            "to delete one.")
    path = tuple(s for s in re.sub(r"\[(-?\d+)\]", r".\1", key.strip()).split(".") if s)
    if not path or any(not re.fullmatch(r"[^\s=]+", s) for s in path):
        raise ConfigurationError(f"Malformed override '{text}': the key '{key}' is not a "
                                 "dotted path like a.b.0.c.")
    value = "" if sep and not raw_value.strip() else None
    if sep and raw_value.strip():
        try:
            value = parse_scalar(raw_value)
        except Exception as exc:  # yaml.YAMLError, but keep the message whatever it is
            raise ConfigurationError(f"Override '{text}': the value '{raw_value}' is not "
                                     f"valid YAML ({str(exc).splitlines()[0]}).") from exc
    return Override(text=text, kind=kind, path=path, value=value, has_value=bool(sep))


def apply_overrides(cfg: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``cfg`` with ``overrides`` applied in order (``cfg`` is untouched)."""
    result = copy.deepcopy(cfg)
    for text in overrides:
        _apply(result, parse_override(text))
    return result


def apply_values(cfg: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` with existing dotted paths set to Python values (no YAML parsing)."""
    result = copy.deepcopy(cfg)
    for key, value in values.items():
        path = tuple(s for s in re.sub(r"\[(-?\d+)\]", r".\1", str(key)).split(".") if s)
        _apply(result, Override(text=f"{key}={value!r}", kind=_SET, path=path, value=value))
    return result


def value_paths(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted path of ``cfg`` (mappings and lists), parents before children."""
    items = (cfg.items() if isinstance(cfg, Mapping)
             else enumerate(cfg) if isinstance(cfg, list) else ())
    paths: list[str] = []
    for key, value in items:
        path = f"{prefix}{key}"
        paths.append(path)
        paths.extend(value_paths(value, f"{path}."))
    return paths


def _apply(cfg: dict[str, Any], ov: Override) -> None:
    create = ov.kind in (_ADD, _FORCE)
    parent: Any = cfg
    for depth, segment in enumerate(ov.path[:-1]):
        key = _find(parent, segment, ov, depth)
        if key is None:
            if not create or not isinstance(parent, dict):
                _missing(parent, segment, ov, depth)
            parent[segment] = {}
            key = segment
        parent = parent[key]
    last = ov.path[-1]
    key = _find(parent, last, ov, len(ov.path) - 1)
    if ov.kind == _DELETE:
        if key is None:
            _missing(parent, last, ov, len(ov.path) - 1)
        if ov.has_value and parent[key] != ov.value:
            raise ConfigurationError(f"Override '{ov.text}': '{_dotted(ov.path)}' is "
                                     f"{parent[key]!r}, not {ov.value!r}; not deleted.")
        del parent[key]
    elif ov.kind == _ADD and key is not None:
        raise ConfigurationError(f"Override '{ov.text}': '{_dotted(ov.path)}' already exists. "
                                 f"Use '{_dotted(ov.path)}=...' to change it, or "
                                 f"'++{_dotted(ov.path)}=...' to add or change it.")
    elif key is None:
        if not create or not isinstance(parent, dict):
            _missing(parent, last, ov, len(ov.path) - 1)
        parent[last] = ov.value
    else:
        parent[key] = ov.value


def _find(node: Any, segment: str, ov: Override, depth: int) -> Any:
    """The key or index of ``segment`` in ``node``, or None when absent."""
    if isinstance(node, dict):
        if segment in node:
            return segment
        if re.fullmatch(r"-?\d+", segment) and int(segment) in node:
            return int(segment)
        return None
    if isinstance(node, list):
        if not re.fullmatch(r"-?\d+", segment):
            raise ConfigurationError(
                f"Override '{ov.text}': '{_dotted(ov.path[:depth]) or '<root>'}' is a list of "
                f"{len(node)} items; index it with an integer, not '{segment}'.")
        index = int(segment)
        return index if -len(node) <= index < len(node) else None
    raise ConfigurationError(
        f"Override '{ov.text}': '{_dotted(ov.path[:depth])}' is a value "
        f"({node!r}), not a mapping or list, so it has no key '{segment}'.")


def _missing(parent: Any, segment: str, ov: Override, depth: int) -> None:
    """Raise the 'key does not exist' error with the deepest existing parent and suggestions."""
    where = _dotted(ov.path[:depth]) or "<root>"
    full = _dotted(ov.path)
    if isinstance(parent, list):
        raise ConfigurationError(f"Override '{ov.text}': index {segment} is out of range for "
                                 f"'{where}', a list of {len(parent)} items.")
    keys = [str(k) for k in parent]
    shown = ", ".join(keys[:15]) + (", ..." if len(keys) > 15 else "")
    hint = (f" Use '+{full}=...' to add it." if ov.kind == _SET else "")
    raise ConfigurationError(
        f"Override '{ov.text}': key '{segment}' does not exist in '{where}' (its keys: "
        f"{shown or 'none'}).{did_you_mean(segment, keys)}{hint}")


def _dotted(path: Iterable[str]) -> str:
    return ".".join(path)
