"""The trial journal of a real tiny experiment (local Ray, trials on the fast path, no torch),
read with Optuna's own API: trial states, params and intermediate values match what Tune
recorded (the ResultGrid and ``results --format json``), with trials ASHA stopped (PRUNED)
and one that raised (FAIL); ``results --journal`` rebuilds the same study from result.json."""

from __future__ import annotations

import contextlib
import io
import json
import time

import pytest
from testkit import local_ray

from itwinai_ray.cli import main

EPOCHS = 4
LRS = [0.05, 0.1, 0.3, 0.5, 0.02]  # run in this order, one at a time
ERROR_LR = 0.02  # the best at epoch 1 (ASHA keeps it), then it fails


def tiny_worker(config, ctx):
    """loss = 10 lr / epoch: a smaller lr is better; ERROR_LR fails after one report."""
    for epoch in range(1, EPOCHS + 1):
        if config["lr"] == ERROR_LR and epoch == 2:
            raise RuntimeError("tiny trial failed on purpose")
        ctx.report({"loss": 10 * config["lr"] / epoch, "epoch": epoch}, None)
        time.sleep(0.02)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from itwinai_ray.backends.ray import driver as ray_backend

    storage = tmp_path_factory.mktemp("journal")
    with local_ray(num_cpus=2):  # shut down again before the tests read the journal
        scheduler = ASHAScheduler(metric="loss", mode="min", max_t=EPOCHS, grace_period=1,
                                  reduction_factor=2)
        with contextlib.redirect_stdout(io.StringIO()):
            grid = ray_backend.run_experiment(
                tiny_worker, {"lr": tune.grid_search(LRS), "epochs": EPOCHS}, num_workers=1,
                use_gpu=False, resources_per_worker=None, metric="loss", mode="min",
                num_samples=1, scheduler=scheduler, max_concurrent_trials=1,
                storage_path=str(storage), name="tiny-journal", max_iterations=EPOCHS,
                mlflow=False)
    return storage / "tiny-journal", grid


def _study(path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path / "optuna-journal.log")))
    return optuna.load_study(storage=storage, study_name="tiny-journal")


def _snapshot(study):
    return {t.system_attrs["tune_trial_id"]: (t.state, t.params, t.intermediate_values,
                                              t.value, t.distributions) for t in study.trials}


@pytest.mark.timeout(300)
def test_journal_matches_what_tune_recorded(experiment, capsys) -> None:
    from optuna.distributions import CategoricalDistribution
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    path, grid = experiment
    study = _study(path)
    assert study.direction == StudyDirection.MINIMIZE
    trials = {t.system_attrs["tune_trial_id"]: t for t in study.trials}
    assert len(trials) == len(LRS) == len(grid)  # each Tune trial once
    capsys.readouterr()
    assert main(["results", str(path), "--format", "json"]) == 0
    rows = {r["trial_id"]: r for r in json.loads(capsys.readouterr().out)["trials"]}
    expected_state = {"finished": TrialState.COMPLETE, "stopped early": TrialState.PRUNED,
                      "error": TrialState.FAIL}
    for result in grid:
        history = result.metrics_dataframe
        trial_id = str(history["trial_id"].iloc[0])
        trial, row = trials[trial_id], rows[trial_id]
        assert trial.params == {"lr": result.config["lr"]}  # "epochs" is a constant
        assert trial.distributions == {"lr": CategoricalDistribution(LRS)}
        assert trial.intermediate_values == pytest.approx(
            dict(zip(history["training_iteration"], history["loss"])))
        assert trial.state == expected_state[row["status"]], row
        if trial.state == TrialState.FAIL:
            assert result.error is not None and trial.value is None
            assert "tiny trial failed on purpose" in trial.system_attrs["fail_reason"]
        else:  # the scope value results ranks by ("best": the lowest loss)
            assert trial.value == pytest.approx(row["loss"]) == pytest.approx(
                history["loss"].min())
    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states and TrialState.FAIL in states
    assert TrialState.COMPLETE in states and TrialState.RUNNING not in states
    completed = min(rows.values(), key=lambda r: r["loss"] if r["status"] == "finished"
                    else float("inf"))
    assert study.best_trial.system_attrs["tune_trial_id"] == completed["trial_id"]
    assert study.best_value == pytest.approx(completed["loss"])

    # the rebuild from result.json gives the same study
    live = _snapshot(study)
    (path / "optuna-journal.log").unlink()
    assert main(["results", str(path), "--journal"]) == 0
    assert _snapshot(_study(path)) == live
