"""Progress view (Ray-free parts) and bad input of `itwinai-ray results` / `mlflow-ui`."""

from __future__ import annotations

import io

import pytest

from itwinai_ray.cli import main
from itwinai_ray.tuning.progress import (
    ProgressState,
    ProgressView,
    end_state,
    format_duration,
    format_line,
    render_rich,
)


def _state() -> ProgressState:
    state = ProgressState(metric="loss", mode="min", total=4, started_at=100.0)
    state.set_state("a", "running")
    state.result("a", 1, {"loss": 0.9})
    state.result("b", 1, {"loss": 0.5})  # a result starts a pending trial
    state.result("b", 2, {"loss": float("nan")})  # non-finite: not a best
    state.set_state("a", "finished")
    return state


def test_counts_best_and_eta() -> None:
    state = _state()
    assert state.counts() == {"pending": 2, "running": 1, "finished": 1, "stopped": 0,
                              "errored": 0}
    assert (state.best, state.best_trial) == (0.5, "b")
    assert state.trials["b"].iteration == 2
    # 1 of 4 done after 60 s: 3 more at that pace
    assert state.eta(now=160.0) == pytest.approx(180.0)
    state.time_budget_s = 100.0  # the budget ends first
    assert state.eta(now=160.0) == pytest.approx(40.0)
    assert format_line(state, now=160.0) == (
        "[hpo 0:01:00] 2 pending, 1 running, 1 finished (1/4 done) | best loss (min, best "
        "epoch): 0.5 (trial b) | ETA 0:00:40")
    maxed = ProgressState(metric="acc", mode="max")
    maxed.result("x", 1, {"acc": 0.1})
    maxed.result("y", 1, {"acc": 0.7})
    assert maxed.best_trial == "y" and maxed.eta() is None
    with pytest.raises(ValueError, match="Unknown trial state"):
        state.set_state("a", "done")


def test_end_state_uses_max_iterations_when_known() -> None:
    assert end_state(True, 2, 4) == "stopped"
    assert end_state(True, 4, 4) == "finished"  # ASHA's max_t stop is a full run
    assert end_state(False, 4, None) == "finished"
    assert end_state(True, 1, None) == "stopped"
    assert format_duration(3725.4) == "1:02:05" and format_duration(None) == "?"


def test_plain_lines_are_throttled_and_final_line_always_written() -> None:
    state = _state()
    out = io.StringIO()
    view = ProgressView(state, stream=out, interval_s=60, min_interval_s=5)
    view.start()  # not a TTY: plain lines
    view.update(now=state.started_at + 1)  # nothing changed, not due
    state.set_state("b", "stopped")
    view.update(now=state.started_at + 2)  # changed but too soon
    assert len(view.lines) == 1
    view.update(now=state.started_at + 1e9)  # changed and due
    view.stop()
    assert len(view.lines) == 3 and out.getvalue().splitlines() == view.lines
    assert "1 stopped" in view.lines[-1]


def test_rich_view_renders_the_same_numbers() -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=150)
    console.print(render_rich(_state(), now=160.0))
    text = console.file.getvalue()
    for word in ("2 pending", "1 running", "1 finished", "0 stopped", "0 errored",
                 "best loss: 0.5 (b)", "1/4 trials done", "elapsed 0:01:00", "ETA 0:03:00"):
        assert word in text, word


def test_results_on_a_directory_that_is_not_an_experiment(tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a Ray Tune experiment directory" in err and "storage_path/name" in err
    assert main(["results", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # the storage path instead of the experiment: name the experiments inside
    (tmp_path / "exp" / "trial_0").mkdir(parents=True)
    (tmp_path / "exp" / "trial_0" / "params.json").write_text("{}")
    assert main(["results", str(tmp_path)]) == 2
    assert f"It contains the experiment(s): {tmp_path / 'exp'}" in capsys.readouterr().err
    # an experiment without a recorded metric asks for one
    assert main(["results", str(tmp_path / "exp")]) == 2
    assert "--metric NAME --mode min|max" in capsys.readouterr().err
    assert main(["mlflow-ui", str(tmp_path / "exp")]) == 2
    assert "No MLflow store" in capsys.readouterr().err


def test_results_of_trial_directories_without_state_files(tmp_path, capsys) -> None:
    """An interrupted run read from the trial directories alone (no experiment state)."""
    import json

    exp = tmp_path / "exp"
    for name, lr, losses, done in (("t1", 0.1, [0.5, 0.3], False), ("t2", 0.2, [0.9], True)):
        (exp / name).mkdir(parents=True)
        (exp / name / "params.json").write_text(json.dumps({"lr": lr}))
        lines = [json.dumps({"loss": v, "training_iteration": i + 1, "trial_id": name,
                             "done": done and i == len(losses) - 1})
                 for i, v in enumerate(losses)]
        (exp / name / "result.json").write_text("\n".join(lines) + "\n{\"cut")
    assert main(["results", str(exp), "--metric", "loss", "--mode", "min", "-f", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["trial_id"] for t in data["trials"]] == ["t1", "t2"]
    assert [t["status"] for t in data["trials"]] == ["unfinished", "stopped early"]
    assert data["best"]["config"] == {"lr": 0.1} and data["trials"][0]["epochs"] == 2


def test_run_config_progress_verbose_mlflow_are_checked_before_ray() -> None:
    from itwinai_ray.errors import ConfigurationError
    from itwinai_ray.tuning.mlflow_runs import MlflowSettings
    from itwinai_ray.tuning.settings import RunSettings

    run = RunSettings.from_any({"verbose": 2, "progress": False,
                                "mlflow": {"experiment_name": "digits"}})
    assert (run.verbose, run.progress) == (2, False)
    settings = MlflowSettings.from_any(run.mlflow).resolved("/tmp/exp", "name")
    assert settings.tracking_uri == "sqlite:////tmp/exp/mlflow.db"
    assert settings.experiment_name == "digits"
    assert MlflowSettings.from_any(False).enabled is False
    for bad, match in (({"verbose": 5}, "run_config.verbose is 5"),
                       ({"progress": "yes"}, "run_config.progress"),
                       ({"mlflow": "yes"}, "run_config.mlflow must be"),
                       ({"mlflow": {"trackin_uri": "x"}}, "Unknown key 'trackin_uri'")):
        with pytest.raises(ConfigurationError, match=match):
            RunSettings.from_any(bad)


def test_a_resumed_run_counts_the_trials_an_earlier_run_ended() -> None:
    """After --resume, Tune sends no events for trials that ended before: the view still
    counts them as done, not as pending (seen on the SLURM requeue test)."""
    from types import SimpleNamespace

    from itwinai_ray.backends.ray.progress import make_progress_callback

    callback = make_progress_callback("loss", "min", 4, None, max_iterations=2,
                                      live=False, stream=io.StringIO())
    done = {"done": True, "training_iteration": 2}
    trials = [SimpleNamespace(trial_id="a", status="TERMINATED", last_result=done),
              SimpleNamespace(trial_id="b", status="ERROR", last_result={}),
              SimpleNamespace(trial_id="c", status="RUNNING", last_result={}),
              SimpleNamespace(trial_id="d", status="PENDING", last_result={})]
    callback.on_step_end(iteration=1, trials=trials)
    assert callback.state.counts() == {"pending": 1, "running": 1, "finished": 1,
                                       "stopped": 0, "errored": 1}
