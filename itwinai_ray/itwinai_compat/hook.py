"""The import hook that serves ``itwinai.*`` modules when itwinai is not installed."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import types
from typing import Any

from .aliases import ITWINAI_MODULES

log = logging.getLogger(__name__)


class _AliasModule(types.ModuleType):
    """An ``itwinai.*`` module whose names resolve, on first use, to itwinai_ray objects."""

    def __getattr__(self, name: str) -> Any:
        target = ITWINAI_MODULES.get(self.__name__, {}).get(name)
        if target is None:
            known = ", ".join(sorted(ITWINAI_MODULES.get(self.__name__, {}))) or "none"
            raise AttributeError(
                f"{self.__name__}.{name} has no itwinai_ray equivalent (itwinai is not "
                f"installed; served names here: {known}). Install itwinai, or import the "
                f"itwinai_ray replacement (docs/itwinai-compat.md).")
        module, attr = target.split(":")
        value = getattr(importlib.import_module(module), attr)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(ITWINAI_MODULES.get(self.__name__, {}))


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in ITWINAI_MODULES:
            return None
        is_package = not ITWINAI_MODULES[fullname] or any(
            m.startswith(fullname + ".") for m in ITWINAI_MODULES)
        if ITWINAI_MODULES[fullname]:
            log.info("import %s: itwinai is not installed, served by itwinai_ray "
                     "(docs/itwinai-compat.md)", fullname)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _AliasModule(spec.name)
        if spec.submodule_search_locations is not None:
            module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__all__ = sorted(ITWINAI_MODULES.get(module.__name__, {}))


_FINDER = _Finder()


def is_installed() -> bool:
    """Whether the hook is active in this process."""
    return _FINDER in sys.meta_path


def real_itwinai_available() -> bool:
    """Whether the real itwinai is importable (this hook left out)."""
    module = sys.modules.get("itwinai")
    if module is not None:
        return not isinstance(module, _AliasModule)
    for finder in sys.meta_path:
        if finder is _FINDER or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec("itwinai", None)
        if spec is not None:  # a directory named itwinai (no __init__.py) is not itwinai
            return spec.origin is not None
    return False


def install() -> bool:
    """Serve ``itwinai.*`` from itwinai_ray unless itwinai is importable. True if active."""
    if is_installed():
        return True
    if real_itwinai_available():
        return False  # the real itwinai: never shadowed
    sys.meta_path.append(_FINDER)  # last: asked only for what no other finder has
    return True


def uninstall() -> None:
    """Remove the hook and the modules it served."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n, m in sys.modules.items() if isinstance(m, _AliasModule)]:
        del sys.modules[name]
