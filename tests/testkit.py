"""Helpers that both test tiers import by name (``from testkit import ...``): the repo root,
the venv's Python, a free port, the environment for child processes and a real local Ray.

They live here, not in a conftest.py: tests/, tests/unit/ and tests/e2e/ each have one, and
every one of them is imported as the module ``conftest``, so ``from conftest import`` would
get whichever pytest loaded last. tests/ is on sys.path (pytest puts each rootless conftest's
folder there), on PYTHONPATH for child processes (:func:`subprocess_env`) and for Ray workers
(:func:`local_ray`), so the trainer modules next to this file import by name everywhere."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
CONFIGS = TESTS / "configs"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: the repo on PYTHONPATH, tests importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def _pulled_in(requirements: list[str]) -> set[str]:
    """The installed distributions that ``requirements`` pull in, transitively, with the
    extras each one asks for (canonical names)."""
    import importlib.metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            deps = importlib.metadata.requires(req.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (its marker does not apply)
        for dep in map(Requirement, deps):
            if dep.marker is None or any(dep.marker.evaluate({"extra": extra})
                                         for extra in {"", *req.extras}):
                todo.append(dep)
    return {name for name, _ in seen}


def optional_modules() -> set[str]:
    """Top-level modules that only the extras of pyproject.toml install (with what they pull
    in, less what the core dependencies pull in), and Horovod (scripts/install_horovod.sh)."""
    import importlib.metadata

    import tomllib
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for reqs in project["optional-dependencies"].values() for r in reqs
              if not r.startswith("itwinai-ray")]
    left_out = _pulled_in(extras) - _pulled_in(project["dependencies"]) | {"horovod"}
    return {module for module, dists in importlib.metadata.packages_distributions().items()
            if all(canonicalize_name(d) in left_out for d in dists)}


def base_install_env() -> dict[str, str]:
    """:func:`subprocess_env` as after the README's ``pip install -e .``: the extras' packages
    cannot be imported, in the process and in its Ray workers (tests/base_install)."""
    env = subprocess_env(ITWINAI_RAY_TEST_WITHOUT=",".join(sorted(optional_modules())))
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS / "base_install"), env["PYTHONPATH"]])
    return env


def pooled_options(pooled: bool) -> dict[str, Any]:
    """``tune_config`` entries of a test run on the pooled path: trial processes keep their
    workers (``reuse_actors``), and one trial at a time, so the later trials do run on the
    workers of the earlier ones."""
    return {"reuse_actors": True, "max_concurrent_trials": 1} if pooled else {}


@contextmanager
def local_ray(num_cpus: int) -> Iterator[Any]:
    """A real local Ray with ``num_cpus`` logical CPUs (overcommitted on purpose: 2 trials x
    2 workers fit on 2 cores), no dashboard, one thread per worker, and tests/ and tests/e2e/
    importable by its workers: the trainers defined in tests/, and the functions and classes
    of the test module itself, which Ray pickles by reference to the module name pytest gave
    it (``test_results_cli``, imported from tests/e2e/). Shut down, and the environment
    restored, on exit. tests/e2e/conftest.py's ``ray_cluster`` fixture uses it per module."""
    import ray

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
            str(TESTS), str(TESTS / "e2e"), os.environ.get("PYTHONPATH")])))
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        try:
            yield ray
        finally:
            ray.shutdown()


# ------------------------------------------------------------------ tutorials, as written
TUTORIALS = ROOT / "tutorials"


def bash_blocks(readme: Path) -> list[str]:
    """The ```bash blocks of a tutorial's README, verbatim."""
    return re.findall(r"```bash\n(.*?)```", readme.read_text(), flags=re.S)


def tutorial_workdir(tmp_path: Path) -> Path:
    """``tmp_path`` with ``tutorials/`` and ``scripts/`` linked in: a tutorial's commands run
    there as written and their results land in ``tmp_path/runs``."""
    for name in ("tutorials", "scripts"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def bash_env() -> dict[str, str]:
    """:func:`subprocess_env` with the venv's bin/ first on PATH (``itwinai-ray`` as typed)."""
    env = subprocess_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def run_bash(block: str, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    """Run ``block`` with ``bash -euo pipefail``; fail with its output unless it exits 0."""
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=bash_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{block}\n--- stdout\n{proc.stdout[-3000:]}\n" \
                                 f"--- stderr\n{proc.stderr[-5000:]}"
    return proc


# ------------------------------------------------------------------ the README demo, watched
DEMO_HPO = TUTORIALS / "00-digits-pipeline" / "hpo.yaml"
#: Where the demo's RayTorchTrainer arguments are, for overrides.
DEMO_RAY = "training_pipeline.init_args.steps.2.init_args"


def demo_command(run_dir: Path, *overrides: str) -> list[str]:
    """``itwinai-ray exec-pipeline`` of the README demo, its results under ``run_dir``."""
    return [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "--config", str(DEMO_HPO),
            f"run_dir={run_dir}", *overrides]


def stop_group(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    """Send ``sig`` to the process group of ``proc`` (started with ``start_new_session``);
    SIGKILL it if it has not ended ``timeout`` s later."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def signal_when(command: list[str], pattern: str, sig: int, *, cwd: Path,
                env: dict[str, str] | None = None, wait_s: float = 300,
                before: Any = None) -> subprocess.CompletedProcess:
    """Run ``command``; once a line of its output matches ``pattern`` (a regex), call
    ``before()`` (if given), then send ``sig``. Returns the run with its whole output."""
    proc = subprocess.Popen(command, cwd=cwd, env=env or subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if re.search(pattern, line):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(wait_s), "".join(lines)
        if before is not None:
            before()
        proc.send_signal(sig)
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines), None)
