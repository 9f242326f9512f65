"""Near the time limit, a trial that cannot report before the stop signal is not started
(issue 18): it waits, the signal stops the run, and --resume starts it afresh."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from testkit import DEMO_RAY, demo_command, signal_when, subprocess_env

from itwinai_ray.tuning.walltime import HOLD_GRACE_S, STATE_FILE, STOP_AT_ENV

EPOCHS = 3
TRIALS = 2


def _command(run_dir: Path, *extra: str) -> list[str]:
    """The demo: 2 trials of 2 DDP workers, one at a time, FIFO (each runs to the end)."""
    return demo_command(run_dir, f"epochs={EPOCHS}", f"num_samples={TRIALS}",
                        f"{DEMO_RAY}.tune_config.scheduler=fifo",
                        f"+{DEMO_RAY}.tune_config.max_concurrent_trials=1", *extra)


def _run_until_a_trial_waits(run_dir: Path) -> tuple[int, str]:
    """Start with the stop signal due in 5 s (the first trial, with no estimate yet, starts
    anyway); once the driver says a trial waits, send SIGUSR1 as SLURM would."""

    def pause() -> None:
        # Had the trial started, it would have reported its first epoch by then; but send
        # the signal well before the held trial gives up waiting for it (HOLD_GRACE_S after
        # the due time, which a loaded machine reaches sooner: the first trial took longer).
        state = json.loads((run_dir / "digits-hpo" / STATE_FILE).read_text())
        gives_up_in = state["stop_at"] + HOLD_GRACE_S - time.time()
        time.sleep(max(0.0, min(60.0, 1.5 * max(state["first_report_s"]) + 2,
                                gives_up_in - 15)))

    env = subprocess_env(**{STOP_AT_ENV: str(time.time() + 5)})
    run = signal_when(_command(run_dir), " waits: its first report is expected ",
                      signal.SIGUSR1, cwd=run_dir.parent, env=env, before=pause)
    return run.returncode, run.stdout


def _history(trial: Path) -> list[int]:
    path = trial / "result.json"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["training_iteration"] for line in lines]


@pytest.mark.timeout(600)
def test_trial_that_cannot_report_before_the_signal_waits_for_the_next_run(tmp_path) -> None:
    run_dir = tmp_path / "runs"
    run_dir.mkdir()
    rc, out = _run_until_a_trial_waits(run_dir)
    assert rc == 75, out[-3000:]
    experiment = run_dir / "digits-hpo"
    state = json.loads((experiment / STATE_FILE).read_text())
    assert len(state["first_report_s"]) == 1 and state["first_report_s"][0] > 0, state
    trials = sorted(experiment.glob("_trial_fn_*"))
    finished = [t for t in trials if _history(t) == list(range(1, EPOCHS + 1))]
    assert len(finished) == 1, {t.name: _history(t) for t in trials}
    held = [t for t in trials if t not in finished]
    assert held, out[-3000:]
    for trial in held:  # waited: no epoch, no worker group (no worker log)
        assert _history(trial) == [], trial.name
        assert not list(trial.glob("worker-*.log")), trial.name
        assert " waits: its first report is expected " in (trial / "trial.log").read_text()
    saved = json.loads((experiment / "results.json").read_text())
    assert saved["interrupted"] is True
    assert sorted(t["status"] for t in saved["trials"]) == ["finished", "not started"], saved
    first_done = {finished[0].name: (finished[0] / "result.json").stat().st_mtime}

    # The next allocation, with its own (later) stop time: the state takes it, nothing waits.
    # (Ray Tune's resume once reverted a state file at the experiment's top level to the
    # previous allocation's, whose stop time was then overdue: the held trial waited again.)
    next_stop = time.time() + 900
    env = subprocess_env(**{STOP_AT_ENV: str(next_stop)})
    second = subprocess.run(_command(run_dir, "--resume"), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=400)
    assert second.returncode == 0, second.stdout[-3000:]
    assert " waits: " not in second.stdout, second.stdout[-3000:]
    state = json.loads((experiment / STATE_FILE).read_text())
    assert state["stop_at"] == pytest.approx(next_stop), state
    assert len(state["first_report_s"]) == 2, state  # the resumed trial's start, measured
    final = json.loads((experiment / "results.json").read_text())
    assert [t["status"] for t in final["trials"]] == ["finished"] * TRIALS, final
    for trial in experiment.glob("_trial_fn_*"):  # every epoch once; the first not rerun
        assert _history(trial) == list(range(1, EPOCHS + 1)), trial.name
    name, mtime = next(iter(first_done.items()))
    assert os.path.getmtime(experiment / name / "result.json") == mtime
