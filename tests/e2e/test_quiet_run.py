"""The README demo in a pipe (as in a SLURM log): a short, honest terminal, every log kept, the
results table and a best config that runs; and trials stopped on purpose that stop in order
(no worker-group errors in Ray's own logs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from testkit import PYTHON, ROOT, base_install_env, subprocess_env

HPO = ROOT / "tutorials" / "00-digits-pipeline" / "hpo.yaml"
RAY = "training_pipeline.init_args.steps.2.init_args"
#: What the README demo may print (issue 15): progress, trial events, the table, the paths.
LINE_BUDGET = 60
#: What Ray logs when a worker group dies under a live controller.
WORKER_GROUP_ERRORS = ("WorkerGroupError", "health check failed", "ActorDiedError")


def _run(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None
         ) -> tuple[subprocess.CompletedProcess, Path]:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "--config", str(HPO),
         f"run_dir={run_dir}", *overrides],
        cwd=tmp_path, env=env or subprocess_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=540)
    return proc, run_dir / "digits-hpo"


def _trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if p.is_dir() and (p / "params.json").is_file())


def _ray_errors(experiment: Path) -> list[str]:
    """Lines of Ray's process logs (kept under logs/ray) that report a dying worker group."""
    found = []
    for log in sorted((experiment / "logs" / "ray").glob("worker-*")):
        for line in log.read_text(errors="replace").splitlines():
            if any(marker in line for marker in WORKER_GROUP_ERRORS):
                found.append(f"{log.name}: {line[:200]}")
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One run of the README demo (4 trials of 2 DDP workers, 3 epochs) through the real CLI,
    its output in a pipe, with only the base install's packages importable (the README's
    `pip install -e .`); the tests below read it from different sides."""
    return _run(tmp_path_factory.mktemp("demo"), "epochs=3", "num_samples=4",
                env=base_install_env())


@pytest.mark.timeout(600)
def test_readme_demo_in_a_pipe_is_short_and_keeps_every_log(demo, capsys) -> None:
    proc, experiment = demo
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(lines) <= LINE_BUDGET, proc.stdout
    assert "Traceback" not in proc.stdout
    assert not [line for line in lines if "Error" in line or "ERROR" in line], proc.stdout
    # Ray's chatter is not on the terminal ...
    for noise in ("TrainController", "RayTrainWorker", "Checkpoint successfully created",
                  "Token authentication", "View the dashboard", "Configuration for experiment"):
        assert noise not in proc.stdout, noise
    # ... it is in the files the output points to.
    assert f"Logs: {experiment / 'logs'}" in proc.stdout
    assert "Started a local Ray instance" in (experiment / "logs" / "driver.log").read_text()
    assert list((experiment / "logs" / "ray").glob("raylet*"))
    trials = _trial_dirs(experiment)
    assert len(trials) == 4
    results = json.loads((experiment / "results.json").read_text())
    for trial in trials:
        for rank in (0, 1):  # the demo's 2 DDP workers
            log = (trial / f"worker-{rank}.log").read_text()
            assert "val_loss" in log or rank == 1, trial.name
        assert (trial / "trial.log").is_file()
    assert len(results["trials"]) == 4
    from itwinai_ray.cli import main  # `itwinai-ray results` points to the same logs

    capsys.readouterr()
    assert main(["results", str(experiment)]) == 0
    assert f"Logs: {experiment / 'logs'}" in capsys.readouterr().out


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", ["train", "pooled"])
def test_trials_stopped_on_purpose_stop_in_order(tmp_path, path: str) -> None:
    """A stop condition ends every trial after its first epoch while its Train run (or its
    pooled workers) still trains: each trial is 'stopped early', and no worker group dies
    under its controller."""
    proc, experiment = _run(tmp_path, "epochs=4", "num_samples=2",
                            f"+{RAY}.tune_config.stop={{training_iteration: 1}}",
                            f"{RAY}.tune_config.reuse_actors={str(path == 'pooled').lower()}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = json.loads((experiment / "results.json").read_text())
    assert [t["status"] for t in results["trials"]] == ["stopped early"] * 2
    assert [t["epochs"] for t in results["trials"]] == [1, 1]
    assert "errored" not in proc.stdout.split("HPO results")[-1]
    actor = ":actor_name:TrainController" if path == "train" else ":actor_name:PoolWorker"
    logs = [log for log in (experiment / "logs" / "ray").glob("worker-*.err")
            if actor in log.read_text(errors="replace")]
    assert len(logs) >= 2  # the logs that would hold the errors are there
    assert _ray_errors(experiment) == []
    assert not (experiment / "_train_runs").exists() or not any(
        (experiment / "_train_runs").iterdir())


@pytest.mark.timeout(600)
def test_hpo_demo_config_runs_and_writes_a_runnable_best_config(demo, tmp_path) -> None:
    """The demo's table, results.json and a best config that runs (this test had its own
    3-trial run of the same config in tests/e2e/test_e2e_hpo_cli.py)."""
    proc, experiment = demo
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "HPO results, ranked by val_loss" in proc.stdout
    results = json.loads((experiment / "results.json").read_text())
    assert len(results["trials"]) == 4
    best = results["best"]
    assert results["trials"][0]["trial_id"] == best["trial_id"]

    best_config = experiment / "best_config.yaml"
    cfg = yaml.safe_load(best_config.read_text())
    trainer = cfg["training_pipeline"]["init_args"]["steps"][2]
    assert trainer["class_path"] == "itwinai_ray.examples.digits.DigitsTrainer"
    assert trainer["init_args"]["config"]["optim_lr"] == pytest.approx(best["config"]["optim_lr"])
    assert trainer["init_args"]["config"]["hidden_size"] == best["config"]["hidden_size"]

    rerun = subprocess.run(
        [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "--config", str(best_config),
         "-o", "training_pipeline.init_args.steps.2.init_args.epochs=1"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "epoch 1/1" in rerun.stderr
