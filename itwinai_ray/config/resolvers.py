"""Resolvers: how YAML scalars are typed and how ``${...}`` interpolations are resolved.

- :class:`YamlLoader` reads ``1e-3`` as a float (plain PyYAML reads it as a string).
- OmegaConf resolves ``${batch_size}`` and ``${itwinai.cwd:}``; resolvers are registered on
  first use (idempotent, ``replace=True``), so importing this module has no side effect.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import yaml

from itwinai_ray._suggest import did_you_mean  # noqa: F401 - re-exported

from ..errors import ConfigurationError


class YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e-3`` as a float and keeps dates as strings."""


_DROPPED_TAGS = ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_scalar(text: str) -> Any:
    """Parse one override value as YAML: ``3`` -> int, ``1e-3`` -> float, ``[1,2]`` -> list."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - YamlLoader is a SafeLoader


def _cwd(sub_path: str = "") -> str:
    """``${itwinai.cwd:}`` -> the current directory; ``${itwinai.cwd:data}`` -> ``<cwd>/data``."""
    cwd = os.getcwd()
    return os.path.join(cwd, str(sub_path)) if sub_path else cwd


#: Resolver name -> function. Add a row to offer a new ``${name:...}`` resolver.
RESOLVERS: dict[str, Callable[..., Any]] = {
    "itwinai.cwd": _cwd,
}


def register_resolvers() -> None:
    """Register :data:`RESOLVERS` with OmegaConf (safe to call any number of times)."""
    from omegaconf import OmegaConf

    # OmegaConf >= 2.4 renamed register_new_resolver (which now warns) to register_resolver.
    register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
    for name, func in RESOLVERS.items():
        register(name, func, replace=True)


def resolve(raw: dict[str, Any], key: str | None = None) -> Any:
    """Resolve interpolations in ``raw`` and return plain Python containers.

    With ``key`` (dotted), only that node is resolved, still against the whole document,
    so another pipeline's broken reference does not prevent this one from loading.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    try:
        cfg = OmegaConf.create(raw)
        node = cfg if key is None else OmegaConf.select(cfg, key, throw_on_missing=True)
        if not OmegaConf.is_config(node):
            return node
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigurationError(_describe(exc)) from exc


def _describe(exc: Exception) -> str:
    """One-line message for an OmegaConf error, naming the key where it happened."""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    full_key = getattr(exc, "full_key", None)
    where = f" at '{full_key}'" if full_key else ""
    return (f"Cannot resolve interpolation{where}: {first_line}. Interpolations look like "
            "${top_level_key} or ${itwinai.cwd:sub/path}; the referenced key must exist.")
