"""ExperimentRuns: MLflow work runs on its own thread, in order, and never holds up the caller
(Tune's event loop); what was queued is in the store once ``end()`` returns. Real MLflow
sqlite store, read back with MlflowClient."""

from __future__ import annotations

import time

from itwinai_ray.tuning.mlflow_runs import ROLE_TAG, TRIAL_TAG, ExperimentRuns, MlflowSettings


def test_queued_runs_reach_the_store_without_blocking_the_caller(tmp_path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    runs = ExperimentRuns(MlflowSettings(), tmp_path, "exp", params={"metric": "loss"})
    real_start = runs.start

    def slow_start() -> None:  # a slow store (remote server, migration) stands in here
        time.sleep(1.5)
        real_start()

    monkeypatch.setattr(runs, "start", slow_start)
    t0 = time.monotonic()
    runs.start_in_background()
    runs.trial_started("t1", {"lr": 0.1})
    for step in (1, 2, 3):
        runs.trial_result("t1", {"training_iteration": step, "loss": 1.0 / step,
                                 "timestamp": time.time(), "done": False, "pid": 1})
    runs.trial_started("t2", {"lr": 0.2})
    runs.trial_result("t2", {"training_iteration": 1, "loss": 2.0})
    runs.trial_ended("t1", "FINISHED")
    # t3 fails, is retried (same trial id: its run reopens) and finishes
    runs.trial_started("t3", {"lr": 0.3})
    runs.trial_result("t3", {"training_iteration": 1, "loss": 3.0})
    runs.trial_ended("t3", "FAILED")
    runs.trial_started("t3", {"lr": 0.3})
    runs.trial_result("t3", {"training_iteration": 2, "loss": 2.5})
    runs.trial_ended("t3", "FINISHED")
    assert time.monotonic() - t0 < 1.0  # nothing waited for the slow start
    thread = runs._thread
    runs.end("FINISHED")  # t2 is still open: closed as KILLED
    assert not thread.is_alive()  # everything queued was done
    runs.end("FAILED")  # the driver's clean-up calls end() again: no effect
    runs.trial_result("t1", {"training_iteration": 9, "loss": 9.0})  # after end: dropped

    client = MlflowClient(tracking_uri=runs.settings.tracking_uri)
    exp = client.get_experiment_by_name("exp")
    found = client.search_runs([exp.experiment_id])
    by_role = {}
    for run in found:
        by_role.setdefault(run.data.tags[ROLE_TAG], []).append(run)
    [parent] = by_role["experiment"]
    assert parent.info.status == "FINISHED" and parent.data.params["metric"] == "loss"
    trials = {r.data.tags[TRIAL_TAG]: r for r in by_role["trial"]}
    assert set(trials) == {"t1", "t2", "t3"}
    assert trials["t1"].info.status == "FINISHED" and trials["t2"].info.status == "KILLED"
    assert trials["t3"].info.status == "FINISHED"
    t3_history = client.get_metric_history(trials["t3"].info.run_id, "loss")
    assert [(m.step, m.value) for m in t3_history] == [(1, 3.0), (2, 2.5)]
    assert trials["t1"].data.params == {"lr": "0.1"}
    history = client.get_metric_history(trials["t1"].info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
    assert "pid" not in trials["t1"].data.metrics  # Ray's bookkeeping keys are not metrics
    assert not runs._open


def test_an_unreachable_store_is_logged_and_the_experiment_goes_on(tmp_path, caplog) -> None:
    bad = tmp_path / "file"
    bad.write_text("not a directory")
    runs = ExperimentRuns(MlflowSettings(tracking_uri=f"sqlite:///{bad}/sub/mlflow.db"),
                          tmp_path, "exp")
    runs.start_in_background()
    runs.trial_started("t1", {"lr": 0.1})
    runs.trial_result("t1", {"training_iteration": 1, "loss": 1.0})
    runs.trial_ended("t1", "FINISHED")
    thread = runs._thread
    runs.end("FINISHED")  # returns: nothing raised, nothing left running
    assert not thread.is_alive() and runs.parent is None
    assert "continuing without MLflow" in caplog.text


def test_a_trial_run_that_could_not_be_created_is_created_at_its_next_result(
        tmp_path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    runs = ExperimentRuns(MlflowSettings(), tmp_path, "exp")
    runs.start()  # no thread: calls run where they are made
    real_create = runs.client.create_run
    calls = []

    def flaky_create(*args, **kwargs):  # one transient server error
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("server busy")
        return real_create(*args, **kwargs)

    monkeypatch.setattr(runs.client, "create_run", flaky_create)
    runs.trial_started("t1", {"lr": 0.1})
    assert "t1" not in runs.trial_runs
    runs.trial_result("t1", {"training_iteration": 1, "loss": 1.0})
    runs.trial_ended("t1", "FINISHED")
    runs.end("FINISHED")
    client = MlflowClient(tracking_uri=runs.settings.tracking_uri)
    run = client.get_run(runs.trial_runs["t1"])
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}
    assert run.data.metrics["loss"] == 1.0
