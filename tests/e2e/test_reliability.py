"""Faults injected for real into HPO runs on a real local Ray: a worker process dies
(``os._exit``), a trial raises, ``fail_fast``, per-trial ``stop`` and the experiment's
``time_budget_s``. Each trial records the epochs it trained (tests/recording_trainers.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from recording_trainers import RecordingTrainer, read_records

from itwinai_ray.errors import ResourceError
from itwinai_ray.integrations.ray_trainer import RayTorchTrainer

# tests/e2e/conftest.py's ray_cluster: A local Ray with 4 logical CPUs; workers import tests/ (the recording trainer).
RAY_CPUS = 4


def _trainer(tmp_path: Any, epochs: int, **config: Any) -> RecordingTrainer:
    return RecordingTrainer(
        config={"batch_size": 64, "optim_lr": 0.01, "hidden_size": 16, "fault": "none",
                "record_file": str(tmp_path / "records.txt"), **config},
        epochs=epochs, random_seed=0)


def _hpo(trainer: RecordingTrainer, tmp_path: Any, name: str, *, workers: int = 1,
         tune: dict[str, Any] | None = None, run: dict[str, Any] | None = None,
         space: dict[str, Any] | None = None, use_gpu: bool = False) -> RayTorchTrainer:
    return RayTorchTrainer(
        trainer=trainer, scaling_config={"num_workers": workers, "use_gpu": use_gpu},
        tune_config={"num_samples": 1, "metric": "loss", "mode": "min", **(tune or {})},
        run_config={"storage_path": str(tmp_path / "results"), "name": name,
                    "min_free_disk_gb": 0, **(run or {})},
        search_space=space or {"optim_lr": {"type": "choice", "categories": [0.01]}})


def _epochs_by_trial(records: list[tuple[str, int, int, int]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for trial, epoch, _, rank in records:
        if rank == 0:
            out[trial].append(epoch)
    return dict(out)


@pytest.mark.timeout(240)
def test_worker_death_restarts_the_group_from_its_checkpoint(ray_cluster, tmp_path,
                                                             digits_split) -> None:
    """Rank 1 of a 2-worker trial calls os._exit(1) at the start of epoch 1: Train restarts
    the worker group (worker_max_failures: 1) from the epoch-0 checkpoint, and the trial
    finishes without error."""
    marker = tmp_path / "died"
    trainer = _trainer(tmp_path, epochs=3, die_at_epoch=1, die_rank=1,
                       die_marker=str(marker), sleep_s=0.5)
    hpo = _hpo(trainer, tmp_path, "worker-death", workers=2,
               run={"worker_max_failures": 1})
    *_, results = hpo.execute(*digits_split)

    assert marker.exists(), "the worker never died: the fault was not injected"
    dead_pid = int(marker.read_text())
    row = results.rows[0]
    assert row.status == "finished" and row.error is None, row.error
    assert row.epochs == 3 and row.metrics["world_size"] == 2
    records = read_records(tmp_path / "records.txt")
    for rank in (0, 1):
        seen = [(epoch, pid) for _, epoch, pid, r in records if r == rank]
        epochs = [e for e, _ in seen]
        # epoch 0 once (before the death), then 1 and 2 in the restarted group, not from 0
        assert epochs == [0, 1, 2], (rank, seen)
        assert seen[0][1] != seen[1][1], "no new worker process after the death"
    assert dead_pid == next(pid for _, e, pid, r in records if r == 1 and e == 0)


@pytest.mark.timeout(240)
def test_a_raising_trial_is_reported_with_its_traceback(ray_cluster, tmp_path,
                                                        digits_split) -> None:
    """One of three trials raises in epoch 1: it is marked errored with its traceback in
    results.json and the summary; the others run until their stop condition."""
    trainer = _trainer(tmp_path, epochs=3)
    hpo = _hpo(trainer, tmp_path, "raises",
               tune={"stop": {"training_iteration": 2}},
               space={"fault": {"type": "grid_search", "values": ["none", "raise", "none"]}})
    *_, results = hpo.execute(*digits_split)

    by_status = defaultdict(list)
    for row in results.rows:
        by_status[row.status].append(row)
    assert len(by_status["error"]) == 1, [(r.status, r.error) for r in results.rows]
    failed = by_status["error"][0]
    assert failed.config["fault"] == "raise"
    assert failed.error == "RuntimeError: injected failure in epoch 1"
    assert 'recording_trainers.py", line' in failed.traceback  # the user's frame
    assert 'raise RuntimeError(f"injected failure' in failed.traceback
    # stop: {training_iteration: 2} stopped both healthy trials after 2 of 3 epochs
    healthy = by_status["stopped early"]
    assert len(healthy) == 2 and all(r.epochs == 2 for r in healthy)
    trained = sorted(_epochs_by_trial(read_records(tmp_path / "records.txt")).values())
    # the failed trial trained epoch 0 only; the others stopped after epoch 1 (at most the
    # epoch under way when Tune stopped them was started)
    assert trained[0] == [0] and all(t[:2] == [0, 1] and len(t) <= 3 for t in trained[1:])
    assert len(trained) == 3
    saved = json.loads((tmp_path / "results" / "raises" / "results.json").read_text())
    assert [e["trial_id"] for e in saved["errors"]] == [failed.trial_id]
    assert "injected failure in epoch 1" in saved["errors"][0]["traceback"]
    summary = results.summary()
    assert "1 error" in summary and f"errored: {failed.trial_id}: RuntimeError" in summary


@pytest.mark.timeout(240)
def test_fail_fast_stops_at_the_first_error_and_keeps_results(ray_cluster, tmp_path,
                                                              digits_split) -> None:
    trainer = _trainer(tmp_path, epochs=2)
    hpo = _hpo(trainer, tmp_path, "fail-fast", run={"fail_fast": True},
               tune={"max_concurrent_trials": 1},
               space={"fault": {"type": "grid_search", "values": ["none", "raise", "none"]}})
    *_, results = hpo.execute(*digits_split)

    ran = sorted(r.status for r in results.rows if r.epochs)
    assert ran == ["error", "finished"], [(r.status, r.epochs) for r in results.rows]
    assert len(_epochs_by_trial(read_records(tmp_path / "records.txt"))) == 2
    saved = json.loads((tmp_path / "results" / "fail-fast" / "results.json").read_text())
    assert len(saved["trials"]) == len(results.rows) and len(saved["errors"]) == 1


@pytest.mark.timeout(240)
def test_time_budget_stops_the_experiment_and_writes_results(ray_cluster, tmp_path,
                                                             digits_split) -> None:
    trainer = _trainer(tmp_path, epochs=50, sleep_s=0.5)
    hpo = _hpo(trainer, tmp_path, "budget",
               tune={"time_budget_s": 12, "num_samples": 3, "max_concurrent_trials": 1})
    *_, results = hpo.execute(*digits_split)

    assert results.rows and all(r.status == "stopped early" for r in results.rows)
    assert 1 <= max(r.epochs for r in results.rows) < 50
    saved = json.loads((tmp_path / "results" / "budget" / "results.json").read_text())
    assert saved["best"]["metric"] is not None
    assert len(saved["trials"]) == len(results.rows)


@pytest.mark.timeout(240)
def test_resume_continues_an_errored_trial_with_this_runs_registry(ray_cluster, tmp_path,
                                                                    digits_split,
                                                                    caplog) -> None:
    """A trial errors in epoch 1; after the bug is fixed, ``resume: true`` continues it from
    its epoch-0 checkpoint. The restored run uses its own resource registry (the saved one
    died with the first run): no registry call fails."""
    first = _hpo(_trainer(tmp_path, epochs=3, fault="raise"), tmp_path, "fixed")
    with pytest.raises(Exception, match="All 1 trials failed.*injected failure"):
        first.execute(*digits_split)
    assert _epochs_by_trial(read_records(tmp_path / "records.txt")).popitem()[1] == [0]

    caplog.clear()
    fixed = _hpo(_trainer(tmp_path, epochs=3), tmp_path, "fixed", run={"resume": True})
    *_, results = fixed.execute(*digits_split)
    row = results.rows[0]
    assert row.status == "finished" and row.epochs == 3, row.error
    assert _epochs_by_trial(read_records(tmp_path / "records.txt")).popitem()[1] == [0, 1, 2]
    assert "registry" not in caplog.text.lower(), caplog.text


@pytest.mark.timeout(60)
def test_gpus_on_a_cluster_without_any_fail_before_any_trial(ray_cluster, tmp_path,
                                                             digits_split) -> None:
    hpo = _hpo(_trainer(tmp_path, epochs=1), tmp_path, "gpu", workers=2, use_gpu=True)
    with pytest.raises(ResourceError, match=r"GPU"):
        hpo.execute(*digits_split)
    assert not (tmp_path / "records.txt").exists()
