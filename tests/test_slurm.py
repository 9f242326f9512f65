"""scripts/slurm_ray.sh on a real SLURM with two nodes (n1 at 127.0.0.1, n2 at 127.0.0.2).

Every job is a real ``sbatch`` of the launcher: a Ray head on n1 and a Ray worker on n2, each
under ``srun --overlap``, then the job command. Checked: exit codes, results on the shared
storage path, the Train workers of each trial on both nodes (as the workers saw it), and that
no process of the job outlives it. These tests skip when SLURM is unavailable, except under
``CI``, where SLURM is required (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, subprocess_env
from slurm_cluster import SlurmCluster, unavailable_reason

SCRIPT = ROOT / "scripts" / "slurm_ray.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"SLURM is required under CI but unavailable: {reason}")
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def _job_env(cluster: SlurmCluster, **extra: str) -> dict[str, str]:
    env = subprocess_env(**cluster.env, RAY_START_TIMEOUT_S="90", **extra)
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    return env


def _sbatch_args(out: Path, workdir: Path, *, wait: bool = True) -> list[str]:
    return ["sbatch", *(["--wait"] if wait else []), "--parsable", "--nodes=2",
            "--ntasks-per-node=1", "--cpus-per-task=1", "--mem=1000", "--time=10",
            f"--output={out}", f"--chdir={workdir}", str(SCRIPT)]


def sbatch_wait(cluster: SlurmCluster, tmp: Path, *cmd: str, timeout: float = 240,
                **env: str) -> tuple[int, str, str]:
    """Submit the launcher with ``cmd``, wait for the job; return (rc, job id, job output)."""
    out = tmp / "job.out"
    proc = subprocess.run([*_sbatch_args(out, tmp), *cmd], capture_output=True, text=True,
                          timeout=timeout, env=_job_env(cluster, **env))
    job_id = proc.stdout.strip().splitlines()[0].split(";")[0] if proc.stdout.strip() else ""
    return proc.returncode, job_id, out.read_text() if out.is_file() else proc.stderr


def job_processes(job_id: str) -> list[str]:
    """Processes of SLURM job ``job_id`` (by their environment) or of its Ray temp dirs."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"SLURM_JOB_ID={job_id}".encode() in environ or f"/ray-{job_id}-" in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def assert_job_cleaned_up(job_id: str) -> None:
    assert job_id
    assert job_processes(job_id) == [], "processes of the job outlived it"
    assert list(Path("/tmp").glob(f"ray-{job_id}-*")) == [], "per-job Ray temp dirs remain"


def _hpo_yaml(tmp: Path, storage: Path) -> Path:
    trainer = {"class_path": "slurm_trainers.NodeRecordingTrainer",
               "init_args": {"epochs": 1, "random_seed": 0,
                             "config": {"batch_size": 64, "optim_lr": 0.003, "hidden_size": 16,
                                        "record_dir": str(tmp / "records")}}}
    config = {"training_pipeline": {"class_path": "itwinai_ray.Pipeline", "init_args": {"steps": [
        {"class_path": "itwinai_ray.examples.digits.DigitsGetter"},
        {"class_path": "itwinai_ray.DataSplitter",
         "init_args": {"train_proportion": 0.7, "validation_proportion": 0.15,
                       "test_proportion": 0.15, "rnd_seed": 0}},
        {"class_path": "itwinai_ray.RayTorchTrainer",
         "init_args": {
             "trainer": trainer,
             # Each node has 1 CPU: a 0.9-CPU worker leaves room for the 0.01-CPU trial driver
             # but not for a second worker, so the 2 workers of a trial sit on both nodes.
             "scaling_config": {"num_workers": 2, "resources_per_worker": {"CPU": 0.9}},
             "tune_config": {"num_samples": 2, "metric": "val_loss", "mode": "min"},
             "run_config": {"name": "slurm-hpo", "storage_path": str(storage)},
             "search_space": {"optim_lr": {"type": "loguniform", "lower": 1e-3,
                                           "upper": 1e-2}}}},
    ]}}}
    path = tmp / "hpo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_node_hpo_runs_each_trial_on_both_nodes(slurm, tmp_path):
    storage = tmp_path / "shared" / "runs"  # one disk seen by both simulated nodes
    config = _hpo_yaml(tmp_path, storage)
    rc, job_id, output = sbatch_wait(slurm, tmp_path, "itwinai-ray", "exec-pipeline",
                                     "--config", str(config),
                                     ITWINAI_RAY_ASSUME_SHARED_STORAGE="1")
    assert rc == 0, output
    assert "Ray cluster up: 2 node(s)" in output
    assert "auth: token" in output

    results = json.loads((storage / "slurm-hpo" / "results.json").read_text())
    assert [t["status"] for t in results["trials"]] == ["finished", "finished"], output
    assert results["best"]["metric"] is not None
    trial_dirs = [p.name for p in (storage / "slurm-hpo").iterdir() if p.is_dir()]
    for trial in results["trials"]:
        assert any(trial["trial_id"] in name for name in trial_dirs), trial_dirs

    records = [json.loads(p.read_text()) for p in (tmp_path / "records").glob("*.json")]
    by_trial: dict[str, list[dict]] = {}
    for rec in records:
        by_trial.setdefault(rec["trial_id"], []).append(rec)
    assert len(by_trial) == 2, records
    for trial_id, recs in by_trial.items():
        assert sorted(r["rank"] for r in recs) == [0, 1], trial_id
        assert all(r["world_size"] == 2 for r in recs)
        assert sorted(r["node_rank"] for r in recs) == [0, 1], recs
        assert sorted(r["slurm_node"] for r in recs) == ["n1", "n2"], recs
        assert len({r["ray_node_ip"] for r in recs}) == 2, recs
        assert {r["slurm_job"] for r in recs} == {job_id}
    assert_job_cleaned_up(job_id)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_failing_job_command_fails_the_job_node_local_storage_refused(slurm, tmp_path):
    """A job command that fails (here: storage under /tmp on 2 nodes) fails sbatch, cleanly."""
    storage = Path("/tmp") / f"itwinai-ray-node-local-{os.getpid()}"
    config = _hpo_yaml(tmp_path, storage)
    rc, job_id, output = sbatch_wait(slurm, tmp_path, "itwinai-ray", "exec-pipeline",
                                     "--config", str(config))
    assert rc == 2, output
    assert "is node-local (under /tmp)" in output
    assert "the Ray cluster has 2 nodes" in output
    assert "ITWINAI_RAY_ASSUME_SHARED_STORAGE=1" in output
    assert "job command exited with 2" in output
    assert not (tmp_path / "records").exists()  # refused before any trial started
    assert_job_cleaned_up(job_id)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_head_start_timeout_shows_the_head_log(slurm, tmp_path):
    rc, job_id, output = sbatch_wait(slurm, tmp_path, "true", RAY_START_TIMEOUT_S="0")
    assert rc == 3, output
    assert "did not open" in output and "RAY_START_TIMEOUT_S" in output
    assert "--- last lines of" in output and "ray start on n1" in output
    assert_job_cleaned_up(job_id)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_scancel_stops_the_job_and_its_ray_processes(slurm, tmp_path):
    marker = tmp_path / "running"
    driver = ("import pathlib, time, ray; ray.init(); "
              f"pathlib.Path({str(marker)!r}).write_text(str(len(ray.nodes()))); "
              "time.sleep(600)")
    out = tmp_path / "job.out"
    submit = subprocess.run([*_sbatch_args(out, tmp_path, wait=False), "python", "-c", driver],
                            capture_output=True, text=True, timeout=30, env=_job_env(slurm),
                            check=True)
    job_id = submit.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 120
    while not marker.is_file():
        assert time.monotonic() < deadline, out.read_text() if out.is_file() else "no output"
        time.sleep(0.5)
    assert marker.read_text() == "2"  # the driver joined the 2-node cluster
    assert job_processes(job_id)
    slurm.run("scancel", job_id)
    deadline = time.monotonic() + 60
    while slurm.run("squeue", "-h", "-j", job_id, check=False).stdout.strip():
        assert time.monotonic() < deadline, "job still in the queue 60 s after scancel"
        time.sleep(0.5)
    output = out.read_text()
    assert "received SIGTERM" in output
    assert_job_cleaned_up(job_id)


def test_outside_slurm_the_script_says_to_use_sbatch(tmp_path):
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("SLURM_")}
    proc = subprocess.run(["bash", str(SCRIPT), "true"], capture_output=True, text=True,
                          timeout=30, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "this script runs under SLURM" in proc.stderr
    assert "sbatch" in proc.stderr
