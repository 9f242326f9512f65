"""Reliability pieces that need no cluster: storage checks, the resume-name rule, per-trial
stop conditions and the reliability settings."""

from __future__ import annotations

import errno
import json
import os
import pickle
from pathlib import Path

import pytest

from itwinai_ray.backends.ray.driver import StopWhen, experiment_to_resume
from itwinai_ray.errors import ConfigurationError, ResourceError
from itwinai_ray.tuning import storage
from itwinai_ray.tuning.experiment import resume_target
from itwinai_ray.tuning.settings import RunSettings, TuneSettings


# ---------------------------------------------------------------------------- storage
def test_check_storage_creates_and_probes(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert storage.check_storage(target, min_free_gb=0) == target
    assert target.is_dir() and list(target.iterdir()) == []  # the probe file is removed


def test_check_storage_refuses_paths_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match=r"cannot be created: Not a directory "
                                                 r"\(ENOTDIR\)\. Set run_config.storage_path"):
        storage.check_storage(blocker / "sub", min_free_gb=0)
    with pytest.raises(ConfigurationError, match="is not a directory"):
        storage.check_storage(blocker, min_free_gb=0)
    with pytest.raises(ConfigurationError, match="cannot be created"):
        storage.check_storage("/proc/itwinai-ray-results", min_free_gb=0)
    with pytest.raises(ConfigurationError, match="not a valid path"):
        storage.check_storage("bad\x00path", min_free_gb=0)


def test_check_storage_refuses_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    free_gib = storage.shutil.disk_usage(tmp_path).free / 1024**3
    with pytest.raises(ResourceError, match=rf"has {int(free_gib)}\.\d\d GiB free, less than "
                                            rf"the 1e\+09 GiB required"):
        storage.check_storage(tmp_path, min_free_gb=1e9)

    # A disk that is already full fails the probe write with ENOSPC: a ResourceError too.
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(ResourceError, match=r"is full: No space left on device \(ENOSPC\)"):
        storage.check_storage(tmp_path, min_free_gb=0)


# ---------------------------------------------------------------------------- resume names
def _experiment(root: Path, name: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "tuner.pkl").write_bytes(b"")  # what Tuner.can_restore looks for


def test_resume_named_experiment_or_newest_with_the_prefix(tmp_path: Path) -> None:
    _experiment(tmp_path, "MyTrainer_20260101-100000")
    _experiment(tmp_path, "MyTrainer_20260102-090000")
    _experiment(tmp_path, "Other_20270101-000000")
    (tmp_path / "MyTrainer_20270101-000000").mkdir()  # no state: not resumable
    assert experiment_to_resume(str(tmp_path), None, "MyTrainer_") == "MyTrainer_20260102-090000"
    assert experiment_to_resume(str(tmp_path), "Other_20270101-000000", "x") == (
        "Other_20270101-000000")
    with pytest.raises(ConfigurationError, match=r"Nothing to resume: .*/missing holds no saved "
                                                 r"experiment state \(tuner.pkl\)"):
        experiment_to_resume(str(tmp_path), "missing", "MyTrainer_")
    with pytest.raises(ConfigurationError, match=r"no experiment named Nope_\*"):
        experiment_to_resume(str(tmp_path), None, "Nope_")
    assert experiment_to_resume(str(tmp_path), None, "Nope_", required=False) is None


def test_resume_target_follows_the_resume_setting(tmp_path: Path) -> None:
    _experiment(tmp_path, "MyTrainer_20260101-100000")
    planned = "MyTrainer_20991231-235959"
    assert resume_target(str(tmp_path), planned, RunSettings()) == (planned, False)
    assert resume_target(str(tmp_path), planned, RunSettings(resume=True)) == (
        "MyTrainer_20260101-100000", True)
    # auto: continue when there is something, else start fresh under the planned name
    assert resume_target(str(tmp_path), "new", RunSettings(name="new", resume="auto")) == (
        "new", False)
    with pytest.raises(ConfigurationError, match="Nothing to resume"):
        resume_target(str(tmp_path), "new", RunSettings(name="new", resume=True))


# ---------------------------------------------------------------------------- stop
def test_stop_conditions_follow_the_metric_direction() -> None:
    stop = StopWhen.build({"val_loss": 0.1, "training_iteration": 5, "acc": 0.9},
                          "val_loss", "min")
    assert not stop("t", {"val_loss": 0.5, "training_iteration": 1, "acc": 0.5})
    assert stop("t", {"val_loss": 0.1, "training_iteration": 1})  # reached: <= for min
    assert stop("t", {"val_loss": 0.5, "training_iteration": 5})  # >= for the others
    assert stop("t", {"acc": 0.95})
    assert not stop("t", {"other": 1})  # keys not in this result never stop it
    maximise = StopWhen.build({"acc": 0.9}, "acc", "max")
    assert maximise("t", {"acc": 0.9}) and not maximise("t", {"acc": 0.5})
    assert StopWhen.build(None, "loss", "min") is None
    assert pickle.loads(pickle.dumps(stop)) == stop  # saved with the experiment for resume
    # keys Tune adds itself need not be reported by the trainer
    assert StopWhen.reported_keys({"training_iteration": 3, "val_loss": 0.1}) == ("val_loss",)


def test_reliability_settings_defaults_and_ray_objects() -> None:
    run = RunSettings()
    assert (run.max_failures, run.worker_max_failures, run.fail_fast, run.resume) == (
        0, 0, "auto", False)  # fail_fast: auto is the default (issue 15.7)
    assert TuneSettings.from_any({"stop": {"val_loss": 0.1}}).stop == {"val_loss": 0.1}
    from ray.tune import FailureConfig, RunConfig

    run = RunSettings.from_any(RunConfig(failure_config=FailureConfig(max_failures=3)))
    assert (run.max_failures, run.fail_fast) == (3, False)
    run = RunSettings.from_any(RunConfig(failure_config=FailureConfig(fail_fast=True)))
    assert (run.max_failures, run.fail_fast) == (0, True)
    with pytest.raises(ConfigurationError, match=r"fail_fast: true .* max_failures=2"):
        RunSettings.from_any({"fail_fast": True, "max_failures": 2})
    assert RunSettings.from_any({"resume": "auto"}).resume == "auto"


def test_a_retried_trials_logs_reach_storage_before_tune_copies_them_back(tmp_path: Path):
    """Tune's loggers copy the storage result.json over the local one when a trial is
    retried; what the storage copy lacks is uploaded first (the DeepSpeed retry test in
    test_deepspeed.py is the end-to-end check)."""
    from types import SimpleNamespace

    import pyarrow.fs

    from itwinai_ray.backends.ray.logs import persist_trial_logs

    local, remote = tmp_path / "staging", tmp_path / "storage" / "trial"
    local.mkdir()
    (local / "result.json").write_text('{"epoch": 1}\n')
    trial = SimpleNamespace(local_path=str(local), storage=SimpleNamespace(
        storage_filesystem=pyarrow.fs.LocalFileSystem(), trial_fs_path=str(remote)))
    assert persist_trial_logs(trial) == {"result.json": 1}  # nothing in storage yet
    assert (remote / "result.json").read_text() == '{"epoch": 1}\n'
    assert persist_trial_logs(trial) == {}  # up to date: left alone
    (remote / "result.json").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    assert persist_trial_logs(trial) == {}  # storage has more (never shortened)
    assert (remote / "result.json").read_text().count("\n") == 2


def test_a_trial_starting_again_from_a_checkpoint_uploads_its_logs_first(tmp_path: Path):
    """A paused trial that resumes (PBT) gets Tune's copy-back as a retry does: the callback
    uploads on the start of a trial with a checkpoint, and only then."""
    from types import SimpleNamespace

    import pyarrow.fs

    from itwinai_ray.backends.ray.logs import keep_logs_callback

    local, remote = tmp_path / "staging", tmp_path / "storage" / "trial"
    local.mkdir()
    (local / "result.json").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    trial = SimpleNamespace(trial_id="t1", local_path=str(local), checkpoint=None,
                            latest_checkpoint_result=None,
                            storage=SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                                                    trial_fs_path=str(remote)))
    callback = keep_logs_callback()
    callback.on_trial_start(iteration=1, trials=[trial], trial=trial)
    assert not (remote / "result.json").exists()  # a first start: Tune restores nothing
    trial.checkpoint = SimpleNamespace(path=str(remote / "checkpoint_000001"))
    callback.on_trial_start(iteration=2, trials=[trial], trial=trial)
    assert (remote / "result.json").read_text().count("\n") == 2


def test_a_trial_starting_again_from_its_own_checkpoint_drops_the_rows_after_it(tmp_path: Path):
    """A stop between Tune's logging of a result and the save of its checkpoint leaves a row
    the trial reports again from the checkpoint before: at its first result after the start,
    those rows go (result.json and progress.csv, storage and staging). From another trial's
    checkpoint (PBT), rows stay. tests/e2e/test_interrupt.py is the end-to-end check."""
    from types import SimpleNamespace

    import pyarrow.fs

    from itwinai_ray.backends.ray.logs import keep_logs_callback

    local, remote = tmp_path / "staging", tmp_path / "storage" / "trial"
    local.mkdir()
    rows = "".join(f'{{"training_iteration": {i}, "epoch": {i}}}\n' for i in (1, 2, 3, 4))
    csv_rows = "a,training_iteration\r\n" + "".join(f"0.{i},{i}\r\n" for i in (1, 2, 3, 4))
    (local / "result.json").write_text(rows)
    (local / "progress.csv").write_text(csv_rows, newline="")
    callback = keep_logs_callback()

    def start_from(path: str, iteration: int) -> SimpleNamespace:
        trial = SimpleNamespace(
            trial_id="t1", local_path=str(local), checkpoint=SimpleNamespace(path=path),
            latest_checkpoint_result=SimpleNamespace(metrics={"training_iteration": iteration}),
            storage=SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                                    trial_fs_path=str(remote)))
        callback.on_trial_start(iteration=1, trials=[trial], trial=trial)
        return trial

    def result(trial: SimpleNamespace) -> None:
        callback.on_trial_result(iteration=2, trials=[trial], trial=trial,
                                 result={"training_iteration": 3})

    result(start_from(str(tmp_path / "storage" / "other" / "checkpoint_000001"), 2))  # PBT
    assert (remote / "result.json").read_text() == rows
    trial = start_from(str(remote / "checkpoint_000001"), 2)
    assert (remote / "result.json").read_text() == rows  # not yet: it may never report again
    result(trial)
    for folder in (local, remote):
        history = (folder / "result.json").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in history] == [1, 2]
        assert (folder / "progress.csv").read_bytes() == b"a,training_iteration\r\n0.1,1\r\n0.2,2\r\n"
    (local / "result.json").write_text(rows)  # once per start: later results are left alone
    result(trial)
    assert (local / "result.json").read_text() == rows
    trial.checkpoint = None  # a retry from scratch (no checkpoint yet) reports all again
    callback.on_trial_start(iteration=3, trials=[trial], trial=trial)
    result(trial)
    assert (local / "result.json").read_text() == ""
    assert (local / "progress.csv").read_bytes() == b"a,training_iteration\r\n"


def test_a_log_rewind_stops_at_a_row_it_cannot_read():
    """A CSV row that does not match the header (Tune writes no new header when a resumed
    trial reports other keys) or a torn last line keeps what is before it."""
    from itwinai_ray.backends.ray.logs import _kept_prefix

    csv_data = b"a,training_iteration\r\n1,1\r\n2,2\r\n3,x,3\r\n4,4\r\n"
    assert _kept_prefix(csv_data, False, 1) == (len(csv_data) - len(b"4,4\r\n"), 1)
    torn = b'{"training_iteration": 1}\n{"training_iteration": 2}\n{"training_iter'
    assert _kept_prefix(torn, True, 1) == (len(torn), 0)
    assert _kept_prefix(b"", True, 1) == (0, 0)


def test_a_second_run_never_shares_the_first_runs_directory(tmp_path, caplog) -> None:
    """Issue 15, part 8: without --resume a run into an existing run_config.name gets
    <name>-2 (then -3), says so, and leaves the earlier run's files alone."""
    import logging

    from itwinai_ray.tuning.experiment import new_experiment_name, resume_target
    from itwinai_ray.tuning.settings import RunSettings

    assert new_experiment_name(str(tmp_path), "exp") == "exp"
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "pipeline.yaml").write_text("x: 1")  # ours only: not a run yet
    assert new_experiment_name(str(tmp_path), "exp") == "exp"
    (tmp_path / "exp" / "experiment_state-2026.json").write_text("{}")
    (tmp_path / "exp-2").mkdir()
    (tmp_path / "exp-2" / "tuner.pkl").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="itwinai_ray"):
        name, resume = resume_target(str(tmp_path), "exp", RunSettings(name="exp"))
    assert (name, resume) == ("exp-3", False)
    assert "Experiment 'exp' already exists" in caplog.text and "--resume" in caplog.text
    assert (tmp_path / "exp" / "experiment_state-2026.json").exists()
