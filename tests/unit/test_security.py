"""Security on shared nodes, in process: the token file is private, YAML is loaded with a
safe loader only, and the package never calls eval/exec. With real processes (a local Ray
that refuses clients without its token, YAML tags through the CLI):
tests/e2e/test_security_e2e.py.
"""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import yaml
from testkit import ROOT

from itwinai_ray.backends.ray import security as _ray_security
from itwinai_ray.config.resolvers import YamlLoader

PACKAGE = ROOT / "itwinai_ray"


def test_the_yaml_loader_is_a_safe_loader() -> None:
    assert issubclass(YamlLoader, yaml.SafeLoader)
    assert not issubclass(YamlLoader, (yaml.FullLoader, yaml.UnsafeLoader))


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_package_has_no_eval_exec_or_unsafe_yaml() -> None:
    """No eval/exec/compile; every yaml.load names a safe Loader; no yaml.unsafe_load."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls(tree):
            func = call.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else "")
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if isinstance(func, ast.Name) and name in ("eval", "exec", "compile"):
                found.append(f"{where} {name}()")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and func.value.id == "yaml":
                if name in ("unsafe_load", "full_load", "unsafe_load_all", "full_load_all"):
                    found.append(f"{where} yaml.{name}()")
                if name in ("load", "load_all"):
                    loader = {k.arg: k.value for k in call.keywords}.get("Loader")
                    ok = isinstance(loader, ast.Name) and loader.id in (
                        "YamlLoader", "SafeLoader", "CSafeLoader")
                    ok = ok or (isinstance(loader, ast.Attribute)
                                and loader.attr in ("SafeLoader", "CSafeLoader"))
                    if not ok:
                        found.append(f"{where} yaml.{name}() without a safe Loader")
    assert not found, found


# ---------------------------------------------------------------------------- token files
def test_token_file_is_created_and_tightened_to_owner_only(tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(var, raising=False)
    path = _ray_security.ensure_private_token()
    assert path == tmp_path / ".ray" / "auth_token"
    assert len(path.read_text()) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # an existing token that others can read (Ray writes it with the umask) is tightened
    os.chmod(path, 0o644)
    token = path.read_text()
    assert _ray_security.ensure_private_token() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == token
    # a token given in the environment is not written anywhere
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x" * 64)
    assert _ray_security.ensure_private_token() is None
