"""YAML-safe copies of configs and results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def yaml_safe(value: Any) -> Any:
    """Mappings to dicts, tuples to lists, numpy scalars to numbers, other objects to repr."""
    if isinstance(value, Mapping):
        return {str(k): yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [yaml_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    return repr(value)
