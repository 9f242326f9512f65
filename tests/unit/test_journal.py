"""The trial journal (itwinai_ray.tuning.journal) on synthetic Tune events, read back with
Optuna's own API: states, params, intermediate values, directions, scope values,
multi-objective, resume without duplicates, the rebuild from result.json, and bad journals.
No Ray cluster here (the Ray-domain mapping only imports ray.tune's domain classes)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from itwinai_ray.cli import main
from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning.journal import (
    COMPLETE,
    FAIL,
    JOURNAL_FILE,
    PRUNED,
    TUNE_TRIAL_ID,
    JournalWriter,
    Objectives,
    journal_path,
    load_study,
)

DISTS = {"lr": FloatDistribution(1e-3, 1.0, log=True), "bs": CategoricalDistribution([16, 32]),
         "layers": IntDistribution(1, 4)}


def _read(experiment: Path, name: str | None = None) -> optuna.Study:
    """The study as Optuna itself reads it."""
    storage = JournalStorage(JournalFileBackend(str(experiment / JOURNAL_FILE)))
    return optuna.load_study(storage=storage, study_name=name or experiment.name)


def _by_tune_id(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.system_attrs[TUNE_TRIAL_ID]: t for t in study.trials}


def test_writer_records_states_params_and_reports_without_blocking(tmp_path, monkeypatch):
    exp = tmp_path / "my-exp"
    writer = JournalWriter(exp, Objectives.build("loss", "min"))
    real_open = writer.open

    def slow_open() -> None:  # slow shared storage stands in here
        time.sleep(1.0)
        real_open()

    monkeypatch.setattr(writer, "open", slow_open)
    t0 = time.monotonic()
    writer.start_in_background()
    writer.trial_started("t1", {"lr": 0.1, "bs": 32, "layers": 2, "epochs": 5}, DISTS)
    for step, loss in ((1, 0.9), (2, 0.4), (3, 0.6)):
        writer.trial_reported("t1", step, {"loss": loss, "training_iteration": step})
    writer.trial_ended("t1", COMPLETE)
    writer.trial_started("t2", {"lr": 0.5, "bs": 16, "layers": 1}, DISTS)
    writer.trial_reported("t2", 1, {"loss": 2.0})
    writer.trial_ended("t2", PRUNED)
    writer.trial_started("t3", {"lr": 0.01, "bs": 16, "layers": 3}, DISTS)
    writer.trial_reported("t3", 1, {"loss": float("nan")})  # not a value: not recorded
    writer.trial_ended("t3", FAIL, reason="RuntimeError: boom")
    writer.trial_started("t4", {"lr": 0.02, "bs": 32, "layers": 4}, DISTS)
    writer.trial_reported("t4", 1, {"loss": 1.5})  # still running at the end
    writer.trial_started("t4", {"lr": 0.02, "bs": 32, "layers": 4}, DISTS)  # no duplicate
    assert time.monotonic() - t0 < 0.5  # nothing waited for the slow open
    writer.close()
    writer.close()  # the driver's clean-up calls it again: no effect

    study = _read(exp)
    assert study.study_name == "my-exp" and study.direction == optuna.study.StudyDirection.MINIMIZE
    trials = _by_tune_id(study)
    assert list(trials) == ["t1", "t2", "t3", "t4"]
    t1, t2, t3, t4 = trials.values()
    assert t1.state == TrialState.COMPLETE and t1.value == 0.4  # scope "best"
    assert t1.params == {"lr": 0.1, "bs": 32, "layers": 2}  # the constant is not a param
    assert t1.distributions == DISTS
    assert t1.intermediate_values == {1: 0.9, 2: 0.4, 3: 0.6}
    assert t2.state == TrialState.PRUNED and t2.value == 2.0
    assert t3.state == TrialState.FAIL and t3.value is None and t3.intermediate_values == {}
    assert t3.system_attrs["fail_reason"] == "RuntimeError: boom"
    assert t4.state == TrialState.RUNNING and t4.intermediate_values == {1: 1.5}
    assert study.best_trial.number == t1.number


def test_opening_prints_nothing(tmp_path, capfd):
    """Optuna announces a new study on stderr; the experiment's terminal stays quiet."""
    writer = JournalWriter(tmp_path / "quiet", Objectives.build("loss", "min"))
    writer.start_in_background()
    writer.close()
    assert journal_path(tmp_path / "quiet").is_file()
    assert "new study" not in capfd.readouterr().err


def test_scope_last_and_a_trial_without_values(tmp_path):
    exp = tmp_path / "scoped"
    writer = JournalWriter(exp, Objectives.build("acc", "max", scope="last-2-avg"))
    writer.open()
    writer.trial_started("a", {"lr": 0.1}, {"lr": DISTS["lr"]})
    for step, acc in ((1, 0.5), (2, 0.9), (3, 0.7)):
        writer.trial_reported("a", step, {"acc": acc})
    writer.trial_ended("a", COMPLETE)
    writer.trial_started("b", {"lr": 0.2}, {"lr": DISTS["lr"]})
    writer.trial_ended("b", COMPLETE)  # finished without reporting the metric
    writer.close()
    study = _read(exp)
    a, b = study.trials
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert a.value == pytest.approx(0.8)
    assert b.state == TrialState.FAIL and "no finite acc" in b.system_attrs["fail_reason"]


def test_multi_objective_directions_and_values(tmp_path):
    exp = tmp_path / "multi"
    writer = JournalWriter(exp, Objectives.build(["loss", "acc"], ["min", "max"]))
    writer.open()
    writer.trial_started("a", {"bs": 16}, {"bs": DISTS["bs"]})
    writer.trial_reported("a", 1, {"loss": 1.0, "acc": 0.6})
    writer.trial_reported("a", 2, {"loss": 0.5, "acc": 0.8})
    writer.trial_ended("a", COMPLETE)
    writer.trial_started("b", {"bs": 32}, {"bs": DISTS["bs"]})
    writer.trial_reported("b", 1, {"loss": 3.0, "acc": 0.1})
    writer.trial_ended("b", PRUNED)
    writer.close()
    study = _read(exp)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    a, b = study.trials
    assert a.values == [0.5, 0.8] and a.intermediate_values == {1: 1.0, 2: 0.5}
    assert b.state == TrialState.PRUNED and b.values is None  # as Optuna's own tell
    assert [t.number for t in study.best_trials] == [a.number]


def test_resume_continues_the_study_without_duplicates(tmp_path):
    exp = tmp_path / "resumed"
    first = JournalWriter(exp, Objectives.build("loss", "min", scope="last-2-avg"))
    first.start_in_background()
    first.trial_started("done", {"lr": 0.1}, {"lr": DISTS["lr"]})
    first.trial_reported("done", 1, {"loss": 1.0})
    first.trial_ended("done", COMPLETE)
    first.trial_started("cut", {"lr": 0.2}, {"lr": DISTS["lr"]})
    first.trial_reported("cut", 1, {"loss": 4.0})
    first.close()  # the driver died here: "cut" is still RUNNING

    trial_dir = tmp_path / "cut_trial"  # Tune's result.json of the interrupted trial
    trial_dir.mkdir()
    (trial_dir / "result.json").write_text(
        json.dumps({"training_iteration": 1, "loss": 4.0}) + "\n")
    second = JournalWriter(exp, Objectives.build("loss", "min", scope="last-2-avg"))
    second.start_in_background()
    second.trial_started("done", {"lr": 0.1}, {"lr": DISTS["lr"]})  # Tune restores it
    second.trial_ended("done", COMPLETE, values=[9.0])  # already finished: unchanged
    second.trial_started("cut", {"lr": 0.2}, {"lr": DISTS["lr"]}, str(trial_dir))
    second.trial_reported("cut", 2, {"loss": 2.0})
    second.trial_ended("cut", COMPLETE)
    second.trial_started("new", {"lr": 0.3}, {"lr": DISTS["lr"]})
    second.close()

    study = _read(exp)
    trials = _by_tune_id(study)
    assert [t.system_attrs[TUNE_TRIAL_ID] for t in study.trials] == ["done", "cut", "new"]
    assert trials["done"].value == 1.0
    assert trials["cut"].state == TrialState.COMPLETE
    assert trials["cut"].value == pytest.approx(3.0)  # mean of epoch 1 (before) and 2 (after)
    assert trials["cut"].intermediate_values == {1: 4.0, 2: 2.0}
    assert trials["new"].state == TrialState.RUNNING


def test_values_outside_the_space_still_fit(tmp_path):
    """PBT perturbs past the bounds, grid values may be lists: each still gets a param."""
    exp = tmp_path / "odd"
    dists = {"lr": FloatDistribution(0.1, 0.5, step=0.1), "arch": CategoricalDistribution(
        ["[1, 2]", "[3]"]), "n": IntDistribution(1, 4)}
    writer = JournalWriter(exp, Objectives.build("loss", "min"))
    writer.open()
    writer.trial_started("a", {"lr": 0.75, "arch": [1, 2], "n": 9}, dists)
    writer.trial_started("b", {"lr": 0.2, "arch": "other", "n": 2}, dists)  # arch: no choice
    writer.close()
    a, b = _read(exp).trials
    assert a.params == {"lr": 0.75, "arch": "[1, 2]", "n": 9}
    assert a.distributions["lr"].high == 0.75 and a.distributions["n"].high == 9
    assert b.params == {"lr": 0.2, "n": 2}


def test_ray_domains_map_to_optuna_distributions():
    from ray import tune
    from ray_objects import ray_space

    from itwinai_ray.backends.ray.journal import distributions

    space = ray_space({
        "lr": {"type": "loguniform", "lower": 1e-4, "upper": 1e-1},
        "drop": {"type": "quniform", "lower": 0.0, "upper": 0.5, "q": 0.1},
        "layers": {"type": "randint", "lower": 1, "upper": 5},
        "width": {"type": "qrandint", "lower": 8, "upper": 64, "q": 8},
        "hidden": {"type": "lograndint", "lower": 4, "upper": 256},
        "bs": {"type": "choice", "categories": [16, 32]},
        "opt": {"grid_search": ["adam", "sgd"]},
        "noise": {"type": "randn", "mean": 0.0, "sd": 1.0},
        "epochs": 3})
    space["fn"] = tune.sample_from(lambda _: 1)
    got = distributions(space)
    assert got == {
        "lr": FloatDistribution(1e-4, 1e-1, log=True),
        "drop": FloatDistribution(0.0, 0.5, step=0.1),
        "layers": IntDistribution(1, 4),  # Ray's randint excludes the upper bound
        "width": IntDistribution(8, 64, step=8),
        "hidden": IntDistribution(4, 255, log=True),
        "bs": CategoricalDistribution([16, 32]),
        "opt": CategoricalDistribution(["adam", "sgd"]),
        "noise": FloatDistribution(-3.0, 3.0)}


# ------------------------------------------------------------------ bad journals
def test_missing_journal_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigurationError, match="No trial journal .*--journal") as err:
        load_study(tmp_path / "exp")
    assert "\n" not in str(err.value)
    assert not journal_path(tmp_path / "exp").exists()  # reading created nothing


@pytest.mark.parametrize("damage", ["garbage", "not-a-log", "other-study"])
def test_corrupted_journal_is_a_one_line_error(tmp_path, damage):
    exp = tmp_path / "exp"
    writer = JournalWriter(exp, Objectives.build("loss", "min"),
                           name="other" if damage == "other-study" else None)
    writer.open()
    writer.trial_started("a", {"lr": 0.1}, {"lr": DISTS["lr"]})
    writer.trial_reported("a", 1, {"loss": 1.0})
    writer.close()
    path = journal_path(exp)
    lines = path.read_text().splitlines(keepends=True)
    if damage == "garbage":
        path.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    elif damage == "not-a-log":
        path.write_text('{"hello": "world"}\n')
    with pytest.raises(ConfigurationError, match=str(path)) as err:
        load_study(exp)
    assert "\n" not in str(err.value) and "--journal" in str(err.value)


def test_a_corrupted_journal_does_not_stop_the_experiment(tmp_path, caplog):
    exp = tmp_path / "exp"
    exp.mkdir()
    journal_path(exp).write_text("{not json\n{\"op_code\": 0}\n")
    before = journal_path(exp).read_text()
    writer = JournalWriter(exp, Objectives.build("loss", "min"))
    with caplog.at_level(logging.WARNING):
        writer.start_in_background()
        writer.trial_started("a", {"lr": 0.1}, {"lr": DISTS["lr"]})
        writer.trial_reported("a", 1, {"loss": 1.0})
        writer.trial_ended("a", COMPLETE)
        writer.close()
    assert "continuing without it" in caplog.text
    assert journal_path(exp).read_text() == before  # left as it was, for a rebuild


# ------------------------------------------------------------------ rebuild
def _fake_experiment(root: Path, meta: dict) -> Path:
    """An experiment directory as Tune leaves it: params.json, result.json, error.txt."""
    exp = root / "old-exp"
    exp.mkdir()
    (exp / "itwinai_ray.json").write_text(json.dumps(meta))
    trials = {  # trial id -> (lr, losses, done, error)
        "a0001": (0.01, [0.9, 0.5, 0.3], True, None),  # ran its 3 epochs
        "a0002": (0.1, [1.5], True, None),  # stopped by the scheduler
        "a0003": (0.5, [2.0], False, "RuntimeError: diverged"),
        "a0004": (0.05, [0.8], False, None),  # still running (or cut off)
    }
    for n, (trial_id, (lr, losses, done, error)) in enumerate(trials.items()):
        d = exp / f"train_{trial_id}_lr={lr}"
        d.mkdir()
        (d / "params.json").write_text(json.dumps({"lr": lr, "epochs": 3}))
        rows = [{"loss": loss, "training_iteration": i + 1, "trial_id": trial_id,
                 "timestamp": 1000 + 10 * n + i, "done": done and i == len(losses) - 1}
                for i, loss in enumerate(losses)]
        (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if error:
            (d / "error.txt").write_text(f"Traceback ...\n{error}\n")
    return exp


@pytest.mark.parametrize("saved", [True, False])
def test_results_journal_rebuilds_an_older_experiment(tmp_path, capsys, saved):
    meta = {"metric": "loss", "mode": "min", "max_iterations": 3, "param_keys": ["lr", "epochs"]}
    if saved:
        meta["distributions"] = {"lr": json.loads(optuna.distributions.distribution_to_json(
            DISTS["lr"]))}
    exp = _fake_experiment(tmp_path, meta)
    journal_path(exp).write_text("{damaged\n")  # a damaged journal is replaced
    assert main(["results", str(exp), "--journal"]) == 0
    assert f"Trial journal: {journal_path(exp)}" in capsys.readouterr().out
    assert main(["results", str(exp), "--journal"]) == 0  # again: the same, no duplicates
    study = load_study(exp)
    trials = _by_tune_id(study)
    assert list(trials) == ["a0001", "a0002", "a0003", "a0004"]  # in start order
    states = {k: t.state for k, t in trials.items()}
    assert states == {"a0001": TrialState.COMPLETE, "a0002": TrialState.PRUNED,
                      "a0003": TrialState.FAIL, "a0004": TrialState.RUNNING}
    assert trials["a0001"].value == 0.3 and trials["a0001"].intermediate_values == {
        1: 0.9, 2: 0.5, 3: 0.3}
    assert trials["a0003"].system_attrs["fail_reason"] == "RuntimeError: diverged"
    assert {k: t.params for k, t in trials.items()} == {
        "a0001": {"lr": 0.01}, "a0002": {"lr": 0.1}, "a0003": {"lr": 0.5}, "a0004": {"lr": 0.05}}
    expected = DISTS["lr"] if saved else FloatDistribution(0.01, 0.5)
    assert trials["a0001"].distributions == {"lr": expected}
    assert not list(exp.glob(".*tmp*"))


def test_the_study_names_its_objectives(tmp_path) -> None:
    """optuna-dashboard labels its axes with the metric names, not "Objective 0"."""
    from itwinai_ray.tuning import journal

    writer = JournalWriter(tmp_path, Objectives.build(["val_loss", "size"], ["min", "min"]))
    writer.open()
    writer.close()
    assert journal.load_study(tmp_path).metric_names == ["val_loss", "size"]
