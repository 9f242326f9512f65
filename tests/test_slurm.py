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
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import PYTHON, ROOT, subprocess_env
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
    env = subprocess_env(**{**cluster.env, "RAY_START_TIMEOUT_S": "90", **extra})
    # As after `source .venv/bin/activate`: the job finds ray and itwinai-ray on PATH.
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    return env


def _sbatch_args(out: Path, workdir: Path, *, wait: bool = True) -> list[str]:
    return ["sbatch", *(["--wait"] if wait else []), "--parsable", "--nodes=2",
            "--ntasks-per-node=1", "--cpus-per-task=1", "--mem=1000", "--time=10",
            f"--output={out}", f"--chdir={workdir}", str(SCRIPT)]


def sbatch_wait(cluster: SlurmCluster, tmp: Path, *cmd: str, timeout: float = 400,
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
             # MLflow is tested elsewhere; here it would only add its start-up time.
             "run_config": {"name": "slurm-hpo", "storage_path": str(storage),
                            "mlflow": False},
             "search_space": {"optim_lr": {"type": "loguniform", "lower": 1e-3,
                                           "upper": 1e-2}}}},
    ]}}}
    path = tmp / "hpo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.timeout(480)
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
@pytest.mark.timeout(420)
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
def test_head_that_does_not_come_up_fails_with_its_log(slurm, tmp_path):
    # A head that exits: Ray refuses a 1 MB object store; its own message is in the log tail.
    rc, job_id, output = sbatch_wait(slurm, tmp_path, "true", RAY_OBJECT_STORE_MB="1")
    assert rc == 3, output
    # Ray opens the head's port before it checks the object store size: either message.
    assert "Ray on node n1 (head) exited before its port" in output or \
        "Ray on node n1 exited during start-up" in output, output
    assert "--- last lines of /tmp/ray-" in output, output
    assert "object store" in output.lower(), output  # Ray's own reason, from the log
    assert "job command" not in output  # never started
    assert_job_cleaned_up(job_id)
    # A head that is not up in time.
    rc, job_id, output = sbatch_wait(slurm, tmp_path, "true", RAY_START_TIMEOUT_S="0")
    assert rc == 3, output
    assert "did not open" in output and "within 0 s (RAY_START_TIMEOUT_S)" in output
    assert "--- last lines of" in output
    assert_job_cleaned_up(job_id)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_scancel_stops_the_job_and_its_ray_processes(slurm, tmp_path):
    marker = tmp_path / "running"
    driver = ("import pathlib, time, ray; ray.init(); "
              f"pathlib.Path({str(marker)!r}).write_text(str(len(ray.nodes()))); "
              "time.sleep(600)")
    # Submitted through `itwinai-ray slurm --submit`: the launcher with its #SBATCH lines set.
    submit = subprocess.run(
        [PYTHON, "-m", "itwinai_ray.cli", "slurm", "-N", "2", "-c", "1", "--mem", "1000",
         "-t", "10", "-J", "scancel-test", "--command", shlex.join(["python", "-c", driver]),
         "--submit"],
        capture_output=True, text=True, timeout=30, env=_job_env(slurm), cwd=tmp_path)
    assert submit.returncode == 0, submit.stderr
    job_id = re.fullmatch(r"Submitted batch job (\d+)", submit.stdout.strip()).group(1)
    out = tmp_path / f"scancel-test-{job_id}.out"
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


# ------------------------------------------------------------------ time limit and requeue
# 4 trials of 10 epochs of 8 s, 2 at a time (one per node): 2 x 85 s of trial work. A 3-minute
# allocation with SIGUSR1 40 s before its end (SLURM sends it up to 30 s earlier: 110-140 s
# in) leaves 95-125 s for the trials once Ray and the driver are up (~15 s): never enough for
# all, always enough for what the first allocation left (a trial loses at most the epoch it
# was in).
WALLTIME_TRIALS = 4
WALLTIME_EPOCHS = 10
WALLTIME_EPOCH_S = 8


def _walltime_yaml(tmp: Path, storage: Path) -> Path:
    """The HPO of :func:`_hpo_yaml` with slow epochs, one worker per trial, resume: auto."""
    config = yaml.safe_load(_hpo_yaml(tmp, storage).read_text())
    ray_step = config["training_pipeline"]["init_args"]["steps"][2]["init_args"]
    ray_step["trainer"] = {
        "class_path": "walltime_trainers.SlowEpochRecordingTrainer",
        "init_args": {"epochs": WALLTIME_EPOCHS, "random_seed": 0,
                      "config": {"batch_size": 64, "optim_lr": 0.003, "hidden_size": 16,
                                 "record_dir": str(tmp / "records"),
                                 "epoch_sleep_s": WALLTIME_EPOCH_S}}}
    # One 0.9-CPU worker per trial: 2 trials at once, one on each 1-CPU node.
    ray_step["scaling_config"] = {"num_workers": 1, "resources_per_worker": {"CPU": 0.9}}
    ray_step["tune_config"] = {"num_samples": WALLTIME_TRIALS, "metric": "val_loss",
                               "mode": "min", "scheduler": "fifo"}
    ray_step["run_config"] = {"name": "slurm-walltime", "storage_path": str(storage),
                              "mlflow": False, "resume": "auto"}
    path = tmp / "walltime.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _job_fields(cluster: SlurmCluster, job_id: str) -> dict[str, str] | None:
    """``scontrol show job`` as a dict; None once the job is gone (MinJobAge after its end)."""
    proc = cluster.run("scontrol", "show", "job", "-o", job_id, check=False)
    if proc.returncode:
        return None
    return dict(f.split("=", 1) for f in proc.stdout.split() if "=" in f)


def wait_for_requeued_job(cluster: SlurmCluster, job_id: str, timeout: float
                          ) -> tuple[list[tuple[float, str, str, int]], dict[str, list[str]]]:
    """Poll the job until it is COMPLETED, FAILED, ... or gone (not `sbatch --wait`, which
    returns when the job is requeued). Returns its states ``(time, JobState, Reason,
    Restarts)``, one per change, and the job's processes seen while it waited in the queue
    between two allocations (``{"<restart>": [process, ...]}``)."""
    states: list[tuple[float, str, str, int]] = []
    between: dict[str, list[str]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = _job_fields(cluster, job_id)
        if fields is None:
            return states, between
        state = (fields.get("JobState", "?"), fields.get("Reason", "?"),
                 int(fields.get("Restarts", "0")))
        if not states or states[-1][1:] != state:
            states.append((round(time.monotonic(), 1), *state))
            # Back in the queue after running: the first allocation's processes are gone.
            if state[0] == "PENDING" and any(s[1] == "RUNNING" for s in states):
                between.setdefault(str(state[2]), job_processes(job_id))
        if state[0] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                        "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"):
            return states, between
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not finished after {timeout} s; states: {states}")


def _check_no_checkpointed_epoch_redone(history: list[dict], starts: list[dict]) -> list[int]:
    """One trial's own records: its result.json rows (one per reported epoch, each with its
    checkpoint) and the epochs its runs started (walltime_trainers). Returns the allocations
    (SLURM_RESTART_COUNT) it ran in."""
    epochs = list(range(1, WALLTIME_EPOCHS + 1))
    # Each epoch reported (and checkpointed) exactly once, in order.
    assert [h["epoch"] for h in history] == epochs, history
    assert [h["training_iteration"] for h in history] == epochs, history
    first_of_run = {h["epoch"] for h in history if h["iterations_since_restore"] == 1}
    runs: list[list[dict]] = []  # one per trial process, in order
    for rec in starts:
        if not runs or runs[-1][-1]["pid"] != rec["pid"] or rec["restart"] != runs[-1][-1][
                "restart"]:
            runs.append([])
        runs[-1].append(rec)
    assert runs[0][0]["epoch"] == 1 and runs[-1][-1]["epoch"] == WALLTIME_EPOCHS, starts
    for i, run in enumerate(runs):
        started = [r["epoch"] for r in run]
        # A run goes through consecutive epochs from the one after its checkpoint.
        assert started == list(range(run[0]["start_epoch"], started[-1] + 1)), starts
        if i == 0:
            continue
        prev = [r["epoch"] for r in runs[i - 1]]
        # The next run starts after the last checkpoint: it redoes at most the epoch that was
        # running when the previous run stopped (never reported: its report, below, is the
        # first of the run that redid it), never an earlier one.
        assert started[0] in (prev[-1], prev[-1] + 1), starts
        assert started[0] in first_of_run, (starts, history)
    return sorted({r["restart"] for r in starts})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_time_limit_stops_requeues_and_resumes_without_redoing_epochs(slurm, tmp_path):
    """Issue 18: an HPO job longer than its 3-minute time limit. SIGUSR1 40 s before it (SLURM
    sends it up to ~30 s earlier) stops the trials in order, the job exits 75 and requeues
    itself; the next allocation resumes the experiment (resume: auto), until all trials are
    done. However early the signal comes, the first allocation cannot finish the work and
    the second can (a third one is tolerated)."""
    storage = tmp_path / "shared" / "runs"
    config = _walltime_yaml(tmp_path, storage)
    out = tmp_path / "job.out"
    submit = subprocess.run(
        ["sbatch", "--parsable", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1",
         "--mem=1000", "--time=3", "--signal=B:USR1@40", "--requeue", "--open-mode=append",
         f"--output={out}", f"--chdir={tmp_path}", str(SCRIPT),
         "itwinai-ray", "exec-pipeline", "--config", str(config)],
        capture_output=True, text=True, timeout=30,
        env=_job_env(slurm, ITWINAI_RAY_REQUEUE="1", ITWINAI_RAY_ASSUME_SHARED_STORAGE="1"))
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip().split(";")[0]
    started = time.monotonic()
    states, between = wait_for_requeued_job(slurm, job_id, timeout=840)
    elapsed = time.monotonic() - started
    output = out.read_text() if out.is_file() else ""
    info = f"states: {states}\nelapsed: {elapsed:.0f} s\n{output[-6000:]}"
    assert states and states[-1][1] == "COMPLETED", info
    restarts = states[-1][3]
    assert restarts >= 1, info  # scontrol: Restarts=

    # The job's own log (all allocations: --open-mode=append) shows each stop and requeue.
    allocations_log = re.split(r"(?=\[slurm_ray [0-9:]+\] job \d+: Ray head on )", output)[1:]
    assert len(allocations_log) == restarts + 1, info
    for restart, log in enumerate(allocations_log[:-1]):
        assert "Ray cluster up: 2 node(s)" in log, info
        # Stopped for the time limit: SIGUSR1 (or the driver's own stop before it).
        assert "time limit" in log, info
        assert "interrupted: " in log and "(exit code 75)" in log, info
        assert "job command exited with 75" in log, info
        assert f"requeueing job {job_id} (restart {restart})" in log, info
        assert "scontrol requeue failed" not in log, info
    assert "job command exited with 0" in allocations_log[-1], info
    assert "requeueing" not in allocations_log[-1], info
    # Between the allocations no process of the job was left.
    assert between and all(procs == [] for procs in between.values()), (between, info)

    experiment = storage / "slurm-walltime"
    results = json.loads((experiment / "results.json").read_text())
    assert results["interrupted"] is False, info
    assert [t["status"] for t in results["trials"]] == ["finished"] * WALLTIME_TRIALS, info
    records: dict[str, list[dict]] = {}
    for path in sorted((tmp_path / "records").glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        records[path.stem] = lines
    assert sorted(records) == sorted(t["trial_id"] for t in results["trials"]), records.keys()
    allocations: dict[str, list[int]] = {}
    for trial in results["trials"]:
        trial_id = trial["trial_id"]
        [trial_dir] = [p for p in experiment.iterdir() if p.is_dir() and trial_id in p.name]
        history = [json.loads(line)
                   for line in (trial_dir / "result.json").read_text().splitlines()]
        starts = records[trial_id]
        assert {r["slurm_job"] for r in starts} == {job_id}
        allocations[trial_id] = _check_no_checkpointed_epoch_redone(history, starts)
    # Some trial went on in a later allocation from the checkpoint of an earlier one.
    assert any(len(a) > 1 for a in allocations.values()), allocations
    assert_job_cleaned_up(job_id)
    usr1 = [re.findall(r"\[slurm_ray ([0-9:]+)\] (?:job \d+: Ray head|time limit near)", log)
            for log in allocations_log]
    print(f"job {job_id}: {restarts} requeue(s), {elapsed:.0f} s; allocations per trial: "
          f"{allocations}; (allocation start, SIGUSR1): {usr1}; states: {states}")


def test_outside_slurm_the_script_says_to_use_sbatch(tmp_path):
    env = {k: v for k, v in subprocess_env().items() if not k.startswith("SLURM_")}
    proc = subprocess.run(["bash", str(SCRIPT), "true"], capture_output=True, text=True,
                          timeout=30, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "this script runs under SLURM" in proc.stderr
    assert "sbatch" in proc.stderr


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
