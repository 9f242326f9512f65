"""Loaded first by every Python process of a test that puts this folder on PYTHONPATH
(testkit.base_install_env): the packages of the optional extras cannot be imported, as after
the README's ``pip install -e .``. Their top-level module names are in
``ITWINAI_RAY_TEST_WITHOUT`` (comma-separated)."""

import os
from importlib.machinery import PathFinder

_WITHOUT = frozenset(filter(None, os.environ.get("ITWINAI_RAY_TEST_WITHOUT", "").split(",")))
_find_spec = PathFinder.find_spec


def _find_spec_unless_left_out(fullname, path=None, target=None):
    """As a package that is not installed: no spec (``importlib.util.find_spec`` gives None,
    ``import`` raises ModuleNotFoundError)."""
    if fullname.partition(".")[0] in _WITHOUT:
        return None
    return _find_spec(fullname, path, target)


if _WITHOUT:
    PathFinder.find_spec = staticmethod(_find_spec_unless_left_out)
