"""Driver killed mid-experiment, then ``itwinai-ray exec-pipeline ... --resume``.

The driver is a real ``itwinai-ray exec-pipeline`` process that starts its own local Ray. It is
SIGKILLed, with everything it started (as when a SLURM job hits its time limit), while one
trial has finished and another is in flight. The resumed run must not retrain finished
trials, must continue in-flight trials from their last checkpoint, and must not start more
trials than ``num_samples`` (the searcher state is restored). Each trial records the epochs
it trained and in which process (tests/recording_trainers.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from recording_trainers import read_records
from testkit import PYTHON, subprocess_env

EPOCHS = 3

CONFIG = """\
hpo_pipeline:
  class_path: itwinai_ray.Pipeline
  init_args:
    steps:
      - class_path: itwinai_ray.examples.digits.DigitsGetter
      - class_path: itwinai_ray.DataSplitter
        init_args: {{train_proportion: 0.6, validation_proportion: 0.2, rnd_seed: 1}}
      - class_path: itwinai_ray.RayTorchTrainer
        init_args:
          trainer:
            class_path: recording_trainers.RecordingTrainer
            init_args:
              epochs: {epochs}
              random_seed: 0
              config: {{batch_size: 64, optim_lr: 0.01, hidden_size: 16, sleep_s: 1.5,
                        record_file: "{records}"}}
          scaling_config: {{num_workers: 1}}
          tune_config: {{num_samples: 3, metric: loss, mode: min, search_alg: optuna,
                         max_concurrent_trials: 2}}
          run_config: {{storage_path: "{storage}", name: crashed, min_free_disk_gb: 0,
                        mlflow: false}}
          ray_init: {{num_cpus: 2, include_dashboard: false}}
          search_space:
            optim_lr: {{type: loguniform, lower: 1.0e-3, upper: 1.0e-1}}
"""


def _driver(config: Path, cwd: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = subprocess_env(TUNE_GLOBAL_CHECKPOINT_S="1")  # experiment state saved every 1 s
    env.pop("RAY_ADDRESS", None)
    with open(log, "w") as out:  # a file, not a pipe: a full pipe would block the driver
        return subprocess.Popen(
            [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "-c", str(config),
             "-p", "hpo_pipeline", *extra],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: killed as a whole, like a job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(420)
def test_driver_sigkill_then_resume_continues_the_experiment(tmp_path) -> None:
    records = tmp_path / "records.txt"
    storage = tmp_path / "results"
    config = tmp_path / "hpo.yaml"
    config.write_text(CONFIG.format(epochs=EPOCHS, records=records, storage=storage))

    first = _driver(config, tmp_path, tmp_path / "first.log")
    try:
        # Kill when a trial has trained all its epochs and another is in flight (>= 1 epoch
        # checkpointed, not finished).
        # "Finished" = trained its last epoch >= 2.5 s ago: Tune has taken its last report
        # and saved the experiment state since (every 1 s here).
        done_at: dict[str, float] = {}
        finished_before: set[str] = set()
        deadline = time.time() + 240
        while time.time() < deadline and first.poll() is None:
            by_trial = defaultdict(set)
            for trial, epoch, _, _ in read_records(records):
                by_trial[trial].add(epoch)
            now = time.time()
            for trial, epochs in by_trial.items():
                if max(epochs) == EPOCHS - 1:
                    done_at.setdefault(trial, now)
            finished_before = {t for t, at in done_at.items() if now - at >= 2.5}
            running = [t for t, e in by_trial.items() if 1 <= max(e) < EPOCHS - 1]
            if finished_before and running:
                break
            time.sleep(0.2)
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-4000:]
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    before = read_records(records)
    old_pids = {pid for _, _, pid, _ in before}
    deadline = time.time() + 30
    while any(_alive(p) for p in old_pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in old_pids), "trial processes survived the driver"

    second = _driver(config, tmp_path, tmp_path / "second.log", "--resume")
    second.wait(timeout=300)
    out = (tmp_path / "second.log").read_text()
    assert second.returncode == 0, out[-4000:]

    all_records = read_records(records)
    old = defaultdict(list)
    new = defaultdict(list)
    for trial, epoch, pid, _ in all_records:
        (old if pid in old_pids else new)[trial].append(epoch)
    trials = set(old) | set(new)
    assert len(trials) == 3, f"searcher budget exceeded or lost: {sorted(trials)}"
    continued = [t for t in new if t in old]
    assert finished_before and continued, (dict(old), dict(new))
    for trial in trials:
        before_epochs, after_epochs = old.get(trial, []), new.get(trial, [])
        assert sorted(set(before_epochs) | set(after_epochs)) == list(range(EPOCHS)), trial
        if trial in finished_before:
            assert after_epochs == [], f"finished trial {trial} was retrained: {after_epochs}"
        elif trial in old and after_epochs:
            # continued from a checkpoint, not from epoch 0: the last one in the saved
            # experiment state (saved every TUNE_GLOBAL_CHECKPOINT_S, so on a busy machine it
            # may be an epoch or two behind the last one the trial wrote)
            start = after_epochs[0]
            assert 1 <= start <= max(before_epochs) + 1, (trial, before_epochs, after_epochs)
            assert after_epochs == list(range(start, EPOCHS))

    saved = json.loads((storage / "crashed" / "results.json").read_text())
    assert len(saved["trials"]) == 3 and saved["errors"] == []
    assert all(t["status"] == "finished" and t["epochs"] == EPOCHS for t in saved["trials"])
    assert "3 trials (3 finished)" in out
