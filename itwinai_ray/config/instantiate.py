"""Build objects from resolved config nodes, in either style, mixable at any depth.

- jsonargparse / itwinai: ``{class_path: pkg.mod.Cls, init_args: {...}}``
- Hydra: ``{_target_: pkg.mod.Cls, key: value, ...}``, plus ``_args_`` (positional) and
  ``_partial_: true`` (returns ``functools.partial``).

Plain dicts and lists stay dicts and lists (their nested nodes are built); scalars stay as
they are. Arguments are checked against the signature before the call, so a typo names the
argument, the class, the YAML location and the closest accepted name.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigurationError
from ..itwinai_compat.aliases import itwinai_object_aliases
from ..itwinai_compat.hook import real_itwinai_available
from .resolvers import did_you_mean

#: Where ``itwinai.*`` paths lead when itwinai itself is not installed: the table of
#: :mod:`itwinai_ray.itwinai_compat.aliases` (add rows there).
ITWINAI_ALIASES: dict[str, str] = itwinai_object_aliases()

_HYDRA_KEYS = {"_target_", "_args_", "_partial_"}
_JSONARGPARSE_KEYS = {"class_path", "init_args"}


def join_location(location: str, key: str | int) -> str:
    """``a.b`` + ``c`` -> ``a.b.c``; ``a.steps`` + ``2`` -> ``a.steps[2]``."""
    if isinstance(key, int):
        return f"{location}[{key}]"
    return f"{location}.{key}" if location else str(key)


@contextlib.contextmanager
def cwd_on_path() -> Iterator[None]:
    """Put the current directory first on ``sys.path`` while resolving (user modules in cwd)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def instantiate(node: Any, location: str = "") -> Any:
    """Build every ``class_path`` / ``_target_`` node in ``node``, depth first.

    ``location`` is the YAML path of ``node`` (e.g. ``training_pipeline``), used in errors.
    """
    with cwd_on_path():
        return _build(node, location)


def _build(node: Any, location: str) -> Any:
    if isinstance(node, list):
        return [_build(item, join_location(location, i)) for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if "class_path" in node and "_target_" in node:
        raise ConfigurationError(f"{_at(location)}has both 'class_path' and '_target_'; use one "
                                 "style per node.")
    if "class_path" in node:
        return _build_jsonargparse(node, location)
    if "_target_" in node:
        return _build_hydra(node, location)
    return {key: _build(value, join_location(location, key)) for key, value in node.items()}


def _build_jsonargparse(node: dict[str, Any], location: str) -> Any:
    extra = sorted(str(k) for k in node if k not in _JSONARGPARSE_KEYS)
    if extra:
        raise ConfigurationError(
            f"{_at(location)}unexpected key(s) {extra} next to 'class_path'; constructor "
            "arguments go under 'init_args'.")
    path = node["class_path"]
    init_args = node.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise ConfigurationError(f"{_at(join_location(location, 'init_args'))}'init_args' must "
                                 f"be a mapping, got {type(init_args).__name__}.")
    target = resolve_target(path, join_location(location, "class_path"))
    kwargs = {k: _build(v, join_location(join_location(location, "init_args"), k))
              for k, v in init_args.items()}
    return _call(target, path, [], kwargs, location, partial=False)


def _build_hydra(node: dict[str, Any], location: str) -> Any:
    reserved = sorted(str(k) for k in node if str(k).startswith("_") and k not in _HYDRA_KEYS)
    if reserved:
        raise ConfigurationError(
            f"{_at(location)}unsupported reserved key(s) {reserved}; supported: "
            f"{sorted(_HYDRA_KEYS)}. Keys starting with '_' are reserved.")
    path = node["_target_"]
    partial = node.get("_partial_", False)
    if not isinstance(partial, bool):
        raise ConfigurationError(f"{_at(join_location(location, '_partial_'))}'_partial_' must "
                                 f"be true or false, got {partial!r}.")
    args = node.get("_args_") or []
    if not isinstance(args, list):
        raise ConfigurationError(f"{_at(join_location(location, '_args_'))}'_args_' must be a "
                                 f"list, got {type(args).__name__}.")
    target = resolve_target(path, join_location(location, "_target_"))
    args = [_build(a, join_location(join_location(location, "_args_"), i))
            for i, a in enumerate(args)]
    kwargs = {k: _build(v, join_location(location, k))
              for k, v in node.items() if k not in _HYDRA_KEYS}
    return _call(target, path, args, kwargs, location, partial=partial)


def _call(target: Any, path: str, args: list[Any], kwargs: dict[str, Any], location: str,
          partial: bool) -> Any:
    _check_arguments(target, path, args, kwargs, location, partial)
    if partial:
        return functools.partial(target, *args, **kwargs)
    try:
        return target(*args, **kwargs)
    except Exception as exc:
        message = str(exc).strip().replace("\n", " ") or "(no message)"
        raise ConfigurationError(f"{_at(location)}building {path} failed: "
                                 f"{type(exc).__name__}: {message}") from exc


def _check_arguments(target: Any, path: str, args: list[Any], kwargs: dict[str, Any],
                     location: str, partial: bool) -> None:
    """Bind the arguments to the signature before calling, to name a bad one precisely."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    params = signature.parameters
    named, accepts_kwargs = _accepted_names(target, signature)
    accepted = ", ".join(named) or "none"
    if not accepts_kwargs:
        for key in kwargs:
            if key not in named:
                raise ConfigurationError(
                    f"{_at(location)}{path} got an unexpected argument '{key}'. Accepted "
                    f"arguments: {accepted}.{did_you_mean(str(key), named)}")
    try:
        (signature.bind_partial if partial else signature.bind)(*args, **kwargs)
    except TypeError as exc:
        missing = [n for n, p in params.items() if p.default is p.empty
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in kwargs]
        detail = (f"missing required argument(s): {', '.join(missing[len(args):])}"
                  if missing[len(args):] else str(exc))
        raise ConfigurationError(f"{_at(location)}{path}: {detail}. Accepted arguments: "
                                 f"{accepted}.") from exc


def _named(signature: inspect.Signature) -> tuple[list[str], bool]:
    params = signature.parameters.values()
    return ([p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)],
            any(p.kind is p.VAR_KEYWORD for p in params))


def _accepted_names(target: Any, signature: inspect.Signature) -> tuple[list[str], bool]:
    """Keyword names ``target`` accepts, following ``**kwargs`` up a class's MRO.

    A subclass ``__init__(self, *args, **kwargs)`` that forwards to its base accepts what the
    base accepts; the walk stops at the first ``__init__`` without ``**kwargs``. Returns the
    names and whether arbitrary keywords are still accepted at the end of the chain.
    """
    named, open_ended = _named(signature)
    if not (open_ended and inspect.isclass(target)):
        return named, open_ended
    for base in target.__mro__[1:]:
        init = base.__dict__.get("__init__")
        if init is None:
            continue
        if base is object:
            break
        try:
            base_named, open_ended = _named(inspect.signature(init))
        except (TypeError, ValueError):
            return named, True
        named += [n for n in base_named if n != "self" and n not in named]
        if not open_ended:
            return named, False
    return named, True


def resolve_target(path: Any, location: str = "") -> Any:
    """Import the object named by dotted ``path``; ``itwinai.*`` falls back to the alias table."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError(f"{_at(location)}expected a dotted import path like "
                                 f"'pkg.module.Class', got {path!r}.")
    path = path.strip()
    alias = ITWINAI_ALIASES.get(path) if path.startswith("itwinai.") else None
    with cwd_on_path():
        try:
            return _import_dotted(path)
        except ImportError as exc:
            error: ImportError = exc
        if alias is not None:
            try:
                return _import_dotted(alias)
            except ImportError as alias_exc:
                error, path = alias_exc, f"{path} (itwinai_ray alias {alias})"
        elif path.startswith("itwinai.") and (_is_missing_itwinai(error)
                                               or not real_itwinai_available()):
            raise ConfigurationError(
                f"{_at(location)}cannot import '{path}': itwinai is not installed and "
                "itwinai_ray has no equivalent. Known itwinai paths: "
                f"{', '.join(sorted(ITWINAI_ALIASES))}.{did_you_mean(path, ITWINAI_ALIASES)}"
            ) from error
    raise ConfigurationError(
        f"{_at(location)}cannot import '{path}': {error}. Check the spelling and that the "
        f"module is installed or in the current directory ({os.getcwd()})."
    ) from error


def _import_dotted(path: str) -> Any:
    """Import the longest importable module prefix of ``path``, then follow attributes."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                if split == 1:
                    raise
                continue  # this prefix is not a module: try a shorter one
            raise  # a module that exists failed to import one of its own dependencies
        for depth, attr in enumerate(parts[split:], start=split):
            if not hasattr(obj, attr):
                owner = ".".join(parts[:depth])
                names = [n for n in dir(obj) if not n.startswith("_")]
                raise ImportError(f"'{owner}' has no attribute '{attr}'."
                                  f"{did_you_mean(attr, names)}")
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"'{path}' is not a dotted path like 'module.Class'")


def _is_missing_itwinai(exc: ImportError) -> bool:
    name = getattr(exc, "name", None) or ""
    return name == "itwinai" or name.startswith("itwinai.")


def _at(location: str) -> str:
    return f"At '{location}': " if location else ""
