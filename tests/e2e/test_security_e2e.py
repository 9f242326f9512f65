"""Security on shared nodes, with real processes: the local Ray that itwinai_ray starts refuses
clients without its token, keeps its token and session files private and binds the dashboard
to 127.0.0.1; Python tags in YAML are rejected, not executed, through the real CLI.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
from testkit import PYTHON, ROOT, subprocess_env

from itwinai_ray.backends.ray import security as _ray_security
from itwinai_ray.config.loader import load_yaml
from itwinai_ray.errors import ConfigurationError

PACKAGE = ROOT / "itwinai_ray"


# ---------------------------------------------------------------------------- YAML, eval
@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
])
def test_python_tags_in_yaml_are_rejected_not_executed(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"training_pipeline:\n  steps: {payload.format(marker=marker)}\n")
    with pytest.raises(ConfigurationError, match=r"evil.yaml.*line 2"):
        load_yaml(config)
    assert not marker.exists()


def test_auth_disabled_on_purpose_warns(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    temp_dir = _ray_security.secure_local_start()
    try:
        assert "RAY_AUTH_MODE=disabled" in caplog.text
        assert not (tmp_path / ".ray" / "auth_token").exists()
        root = Path(temp_dir).parent
        assert root.parent == tmp_path and stat.S_IMODE(root.stat().st_mode) == 0o700
    finally:
        _ray_security.remove_temp_dir()
    assert not Path(temp_dir).parent.exists()


# ---------------------------------------------------------------------------- live cluster
SERVER = textwrap.dedent("""\
    import json, os, sys
    import ray
    from itwinai_ray.backends.ray import driver as ray_backend
    assert ray_backend.ensure_ray(num_cpus=1, include_dashboard=True)
    node = ray._private.worker.global_worker.node
    print("INFO " + json.dumps({"gcs": ray.get_runtime_context().gcs_address,
                      "session_dir": node.get_session_dir_path(),
                      "dashboard": node.webui_url}), flush=True)
    sys.stdin.read()  # serve until the test closes stdin
    ray_backend.shutdown()
""")


CLIENT = textwrap.dedent("""\
    import sys, ray
    ray.init(address=sys.argv[1])
    print("CONNECTED", ray.cluster_resources().get("CPU"))
""")


def _client(address: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    child = subprocess_env(HOME=str(home), **env)
    for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        if var not in env:
            child.pop(var, None)
    return subprocess.run([PYTHON, "-c", CLIENT, address], env=child, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.timeout(300)
def test_local_cluster_refuses_clients_without_its_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # a short temp root: Ray's unix socket paths under it must stay below 108 characters
    short_tmp = Path(tempfile.mkdtemp(prefix="s", dir="/tmp"))
    env = subprocess_env(HOME=str(home), RAY_TMPDIR=str(short_tmp))
    for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        env.pop(var, None)
    server_log = tmp_path / "server.log"
    with open(server_log, "w") as log:
        server = subprocess.Popen([PYTHON, "-c", SERVER], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = ""
        while not line.startswith("INFO "):
            line = server.stdout.readline()
            assert line or server.poll() is None, server_log.read_text()[-3000:]
        info = json.loads(line[len("INFO "):])
        token_file = home / ".ray" / "auth_token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        # Ray's session files live under a private root (Ray makes its own dirs 0777)
        session = Path(info["session_dir"])
        root = session.parent.parent
        assert root.parent == short_tmp and root.name.startswith("ir-")
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert info["dashboard"] and info["dashboard"].startswith("127.0.0.1:")

        other_home = tmp_path / "other"
        other_home.mkdir()
        wrong = _client(info["gcs"], other_home, RAY_AUTH_MODE="token",
                        RAY_AUTH_TOKEN="0" * 64)
        assert wrong.returncode != 0 and "CONNECTED" not in wrong.stdout
        assert "InvalidAuthToken" in wrong.stderr or "AuthenticationError" in wrong.stderr
        none = _client(info["gcs"], other_home, RAY_AUTH_MODE="disabled")
        assert none.returncode != 0 and "CONNECTED" not in none.stdout
        # control: the same client with the right token gets in
        right = _client(info["gcs"], other_home, RAY_AUTH_MODE="token",
                        RAY_AUTH_TOKEN=token_file.read_text())
        assert right.returncode == 0 and "CONNECTED 1.0" in right.stdout, right.stderr[-2000:]
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    assert not root.exists(), "session files left behind after shutdown"
    shutil.rmtree(short_tmp, ignore_errors=True)
