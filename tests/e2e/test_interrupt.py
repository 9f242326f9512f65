"""An interrupted run (SIGTERM to the driver; SIGUSR1 as the SLURM launcher sends it works the
same) stops in order, says so, exits 75, and --resume finishes it from each trial's last kept
checkpoint, each epoch once in the trial's history."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from testkit import DEMO_RAY, demo_command, signal_when, subprocess_env

EXIT_INTERRUPTED = 75
#: Epochs per trial: enough that a trial is still training when the signal's stop arrives
#: (an epoch of a pooled trial takes ~0.1 s here, of a Train run's ~0.3 s).
EPOCHS = {"train": 20, "pooled": 150}


def _command(run_dir: Path, path: str, *extra: str) -> list[str]:
    """The demo: 2 trials of 2 DDP workers, both at once, FIFO (each runs to the end), on a
    Train run per trial or on reused workers (the demo's ``reuse_actors: true``)."""
    return demo_command(run_dir, f"epochs={EPOCHS[path]}", "num_samples=2",
                        f"{DEMO_RAY}.tune_config.scheduler=fifo",
                        f"{DEMO_RAY}.tune_config.reuse_actors={str(path == 'pooled').lower()}",
                        *extra)


def _interrupt_after_first_reports(run_dir: Path, path: str,
                                   sig: int) -> subprocess.CompletedProcess:
    """Run, and send ``sig`` once the progress view shows a first reported value."""
    return signal_when(_command(run_dir, path), r"\| best val_loss \(.*\): \d", sig,
                       cwd=run_dir.parent, wait_s=240)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", ["train", "pooled"])
def test_interrupted_run_says_so_and_resume_logs_each_epoch_once(tmp_path, path: str) -> None:
    """SIGTERM: through our handler (taken back from Ray's core after ray.init) into Tune's
    own stop. SIGUSR1 goes to Tune's handler directly: tests/e2e/test_slurm_e2e.py sends it."""
    sig = signal.SIGTERM
    run_dir = tmp_path / "runs"
    run_dir.mkdir()
    first = _interrupt_after_first_reports(run_dir, path, sig)
    assert first.returncode == EXIT_INTERRUPTED, first.stdout[-3000:]
    assert "Pipeline 'training_pipeline' finished" not in first.stdout
    assert "was interrupted" in first.stdout
    assert "interrupted: " in first.stdout and "Resume with: itwinai-ray exec-pipeline" \
        in first.stdout and first.stdout.rstrip().endswith("--resume")
    experiment = run_dir / "digits-hpo"
    saved = json.loads((experiment / "results.json").read_text())
    assert saved["interrupted"] is True
    statuses = {t["trial_id"]: t["status"] for t in saved["trials"]}
    assert "interrupted" in statuses.values(), statuses
    assert "stopped early" not in statuses.values(), statuses  # never mislabelled

    second = subprocess.run(_command(run_dir, path, "--resume"), cwd=tmp_path, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=400)
    assert second.returncode == 0, second.stdout[-3000:]
    final = json.loads((experiment / "results.json").read_text())
    assert final["interrupted"] is False
    assert [t["status"] for t in final["trials"]] == ["finished"] * 2
    # Each reported epoch once, in order. A stop between Tune's logging of a result and the
    # save of its checkpoint makes the trial report that epoch again (backends/ray/logs.py).
    for trial in experiment.glob("_trial_fn_*"):
        history = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        epochs = list(range(1, EPOCHS[path] + 1))
        assert [h["training_iteration"] for h in history] == epochs, trial.name
        assert [h["epoch"] for h in history] == epochs, trial.name
