"""The SLURM launcher without SLURM: ``itwinai-ray slurm`` fills in the launcher, its bad
input, the shipped script, shared storage and the node waiter. Real jobs on a real SLURM:
tests/e2e/test_slurm_e2e.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from testkit import ROOT

SCRIPT = ROOT / "scripts" / "slurm_ray.sh"


# ------------------------------------------------------------------ fast: no SLURM needed
def test_itwinai_ray_slurm_fills_in_the_launcher(capsys):
    from itwinai_ray.cli import main

    assert main(["slurm", "-N", "4", "-G", "4", "-c", "32", "-t", "02:00:00", "-p", "booster",
                 "-A", "proj", "--config", "my hpo.yaml"]) == 0
    script = capsys.readouterr().out
    sbatch = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in ("--nodes=4", "--gpus-per-node=4", "--cpus-per-task=32", "--time=02:00:00",
                     "--partition=booster", "--account=proj", "--ntasks-per-node=1"):
        assert f"#SBATCH {expected}" in sbatch
    assert len([s for s in sbatch if s.startswith("#SBATCH --nodes=")]) == 1
    assert "    itwinai-ray exec-pipeline --config 'my hpo.yaml' &" in script
    # Without GPUs the GPU line stays commented out.
    assert main(["slurm", "--command", "python tune.py"]) == 0
    script = capsys.readouterr().out
    assert "##SBATCH --gpus-per-node=4" in script and "    python tune.py &" in script
    # Time limit: SIGUSR1 120 s before by default; --signal-before and --requeue.
    assert "#SBATCH --signal=B:USR1@120" in script and "##SBATCH --requeue" in script
    assert 'ITWINAI_RAY_REQUEUE="${ITWINAI_RAY_REQUEUE:-0}"' in script
    assert main(["slurm", "--config", "h.yaml", "--signal-before", "40", "--requeue"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --signal=B:USR1@40" in script and "\n#SBATCH --requeue" in script
    assert 'ITWINAI_RAY_REQUEUE="${ITWINAI_RAY_REQUEUE:-1}"' in script
    assert len([line for line in script.splitlines() if line.startswith("#SBATCH --signal")]) == 1


def test_itwinai_ray_slurm_bad_input(capsys, tmp_path):
    from itwinai_ray.cli import main
    from itwinai_ray.errors import ConfigurationError
    from itwinai_ray.slurm import SlurmJob, render

    assert main(["slurm", "-N", "0"]) == 2
    assert "--nodes is 0, but must be an integer >= 1" in capsys.readouterr().err
    assert main(["slurm", "-G", "-1"]) == 2
    assert "--gpus-per-node is -1" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="not a SLURM time"):
        render(SlurmJob(time="2h"))
    with pytest.raises(ConfigurationError, match="no default job command line"):
        render(SlurmJob(), template="#!/bin/bash\n#SBATCH --nodes=1\nmy_command\n")
    out = tmp_path / "job.sh"
    assert main(["slurm", "-N", "3", "--output", str(out)]) == 0
    assert "#SBATCH --nodes=3" in out.read_text() and os.access(out, os.X_OK)


def test_shipped_launcher_is_the_script():
    from itwinai_ray.slurm import script_path

    assert script_path().read_text() == SCRIPT.read_text()


def _mounts(tmp_path: Path, *entries: tuple[str, str]) -> str:
    path = tmp_path / "mounts"
    path.write_text("".join(f"dev {point} {fstype} rw 0 0\n" for point, fstype in entries))
    return str(path)


def test_storage_must_be_shared_with_several_nodes(tmp_path, monkeypatch, caplog):
    from itwinai_ray.errors import ConfigurationError
    from itwinai_ray.tuning.storage import ASSUME_SHARED_ENV, check_shared_storage

    monkeypatch.delenv(ASSUME_SHARED_ENV, raising=False)
    monkeypatch.delenv("TMPDIR", raising=False)
    mounts = _mounts(tmp_path, ("/", "ext4"), ("/p", "lustre"), ("/p/scratch/local", "tmpfs"),
                     ("/home", "nfs4"))
    with pytest.raises(ConfigurationError, match=r"node-local \(under /tmp\).*2 nodes.*"
                                                 + ASSUME_SHARED_ENV + "=1"):
        check_shared_storage("/tmp/runs", 2, mounts=mounts)
    with pytest.raises(ConfigurationError, match=r"node-local \(on tmpfs \(/p/scratch/local\)"):
        check_shared_storage("/p/scratch/local/runs", 4, mounts=mounts)
    assert check_shared_storage("/tmp/runs", 1, mounts=mounts) == "ok"  # one node: any path
    assert check_shared_storage("/p/project/runs", 2, mounts=mounts) == "ok"  # lustre
    assert check_shared_storage("/home/me/runs", 2, mounts=mounts) == "ok"  # nfs4
    assert check_shared_storage("s3://bucket/runs", 2, mounts=mounts) == "ok"
    with caplog.at_level("WARNING"):
        assert check_shared_storage("/data/runs", 2, mounts=mounts) == "unknown"  # ext4
    assert "may be node-local" in caplog.text
    monkeypatch.setenv("TMPDIR", "/data/tmp")
    with pytest.raises(ConfigurationError, match=r"under /data/tmp"):
        check_shared_storage("/data/tmp/runs", 2, mounts=mounts)
    monkeypatch.setenv(ASSUME_SHARED_ENV, "1")
    assert check_shared_storage("/tmp/runs", 2, mounts=mounts) == "ok"


def test_node_waiter_names_the_missing_nodes(tmp_path, monkeypatch, capsys):
    """The launcher's readiness poll (Ray's node list faked: a second Ray node is slow here)."""
    from itwinai_ray.backends.ray import nodes as _ray_nodes

    calls = []

    def alive(address):
        calls.append(address)
        if len(calls) == 1:
            raise ConnectionError("GCS not up yet")  # retried until the deadline
        return {"n1": "127.0.0.1"}

    monkeypatch.setattr(_ray_nodes, "alive_node_names", alive)
    missing = tmp_path / "missing"
    rc = _ray_nodes.main(["wait", "--address", "127.0.0.1:1", "--timeout", "0.6",
                          "--missing-file", str(missing), "n1", "n2", "n3"])
    assert rc == 1 and len(calls) >= 2
    assert missing.read_text().split() == ["n2", "n3"]
    assert "1 of 3 nodes joined the Ray cluster at 127.0.0.1:1 within 0.6 s; missing: n2, n3" \
        in capsys.readouterr().err
    monkeypatch.setattr(_ray_nodes, "alive_node_names", lambda a: {"n1": "x", "n2": "y"})
    assert _ray_nodes.main(["wait", "--address", "a:1", "n1", "n2"]) == 0
