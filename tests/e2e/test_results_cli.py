"""Results of a real tiny experiment: `itwinai-ray results`, plots, MLflow runs, progress lines.

One module-scoped local Ray runs two tiny experiments (trials on the fast path, no torch):
- ``tiny``: 5 trials one at a time under ASHA (so the worse later ones are stopped early),
  one of them raising after its first report;
- ``broken``: 2 trials that all raise before reporting (zero finished trials).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from testkit import PYTHON, free_port, local_ray, stop_group, subprocess_env

from itwinai_ray.cli import main

EPOCHS = 4
LRS = [0.05, 0.1, 0.3, 0.5, 0.02]  # run in this order
BEST_LR = 0.05
ERROR_LR = 0.02  # the best at epoch 1 (ASHA keeps it), then it fails


def tiny_worker(config, ctx):
    """loss = 10 lr / epoch: a smaller lr is better; ERROR_LR fails after one report."""
    for epoch in range(1, EPOCHS + 1):
        if config["lr"] == ERROR_LR and epoch == 2:
            raise RuntimeError("tiny trial failed on purpose")
        ctx.report({"loss": 10 * config["lr"] / epoch, "epoch": epoch}, None)
        time.sleep(0.02)


def broken_worker(config, ctx):
    raise ValueError(f"broken trial {config['lr']}")


def _run(name, worker, space, storage, **kwargs):
    from ray.tune.schedulers import ASHAScheduler

    from itwinai_ray.backends.ray import driver as ray_backend

    scheduler = ASHAScheduler(metric="loss", mode="min", max_t=EPOCHS, grace_period=1,
                              reduction_factor=2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # not a TTY: the plain progress lines
        grid = ray_backend.run_experiment(
            worker, space, num_workers=1, use_gpu=False, resources_per_worker=None,
            metric="loss", mode="min", num_samples=1, scheduler=scheduler,
            max_concurrent_trials=1, storage_path=str(storage), name=name,
            max_iterations=EPOCHS, **kwargs)
    return grid, out.getvalue()


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    from ray import tune

    storage = tmp_path_factory.mktemp("experiments")
    with local_ray(num_cpus=5):  # shut down again before the tests read the results
        tiny = _run("tiny", tiny_worker, {"lr": tune.grid_search(LRS)}, storage)
        broken = _run("broken", broken_worker, {"lr": tune.grid_search([1.0, 2.0])}, storage)
    return {"tiny": (storage / "tiny", *tiny), "broken": (storage / "broken", *broken)}


def _results_json(path, capsys):
    capsys.readouterr()
    assert main(["results", str(path), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.timeout(300)
def test_results_table_best_is_the_result_grids_best(experiments, capsys) -> None:
    path, grid, _ = experiments["tiny"]
    # scope "all" is Ray's name for the default scope "best" (each trial's best report)
    best = grid.get_best_result(metric="loss", mode="min", scope="all")
    data = _results_json(path, capsys)
    assert data["trials"][0]["trial_id"] == best.metrics["trial_id"]
    assert data["best"]["config"] == {"lr": best.config["lr"]} == {"lr": BEST_LR}
    assert data["best"]["loss"] == pytest.approx(best.metrics["loss"])
    by_lr = {t["lr"]: t for t in data["trials"]}
    assert len(by_lr) == len(LRS)
    assert by_lr[ERROR_LR]["status"] == "error"
    assert "tiny trial failed on purpose" in by_lr[ERROR_LR]["error"]
    # one at a time under ASHA: the first trial runs to the end, worse later ones stop early
    assert by_lr[LRS[0]]["status"] == "finished" and by_lr[LRS[0]]["epochs"] == EPOCHS
    stopped = [t for t in data["trials"] if t["stopped_early"]]
    assert stopped and all(t["status"] == "stopped early" and t["epochs"] < EPOCHS
                           for t in stopped)
    for row in data["trials"]:  # epochs run = what Tune recorded for that trial
        result = next(r for r in grid if r.metrics.get("trial_id") == row["trial_id"])
        assert row["epochs"] == (result.metrics or {}).get("training_iteration", 0)

    # the other formats carry the same ranking; the table names the best values as YAML
    assert main(["results", str(path), "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0].startswith(
        "rank,trial_id,lr,loss,best,best_epoch,last,epochs,status,stopped_early")
    assert csv_lines[1].split(",")[1] == best.metrics["trial_id"]
    assert main(["results", str(path), "--format", "markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| rank | trial_id | lr | loss |") and len(md) == 2 + len(LRS)
    assert main(["results", str(path)]) == 0
    out = capsys.readouterr().out
    assert best.metrics["trial_id"] in out and "stopped early" in out
    assert f"lr: {BEST_LR}" in out


@pytest.mark.timeout(300)
def test_plots_are_real_images_with_one_curve_per_trial(experiments, tmp_path, capsys) -> None:
    from PIL import Image

    from itwinai_ray.report import load_experiment, plots

    path, grid, _ = experiments["tiny"]
    exp = load_experiment(path)
    figs = plots.figures(exp)
    assert set(figs) == {"learning_curves", "parallel_coordinates", "importance"}
    curves = figs["learning_curves"].axes[0].lines
    reported = [r for r in grid if (r.metrics or {}).get("training_iteration")]
    assert len(curves) == len(reported) == len(LRS)  # the errored trial reported once
    dashed = [ln for ln in curves if ln.get_linestyle() == "--"]
    assert len(dashed) == sum(r.status == "stopped early" for r in exp.results.rows) > 0
    scored = [r for r in exp.results.rows if r.metric is not None]
    assert len(figs["parallel_coordinates"].axes[0].lines) == len(scored)
    assert len(figs["importance"].axes[0].patches) == 1  # one hyperparameter: lr

    assert main(["results", str(path), "--plot", str(tmp_path / "plots")]) == 0
    for name in ("learning_curves", "parallel_coordinates", "importance"):
        png = tmp_path / "plots" / f"{name}.png"
        assert 5_000 < png.stat().st_size < 150_000
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width >= 500 and image.height >= 150
            assert len(image.getcolors(1 << 20) or []) > 20  # not a blank canvas


@pytest.mark.timeout(300)
def test_mlflow_parent_and_one_child_per_trial_with_statuses(experiments, capsys) -> None:
    from mlflow import MlflowClient

    path, grid, _ = experiments["tiny"]
    meta = json.loads((path / "itwinai_ray.json").read_text())
    assert meta["mlflow"]["tracking_uri"] == f"sqlite:///{path.resolve() / 'mlflow.db'}"
    client = MlflowClient(meta["mlflow"]["tracking_uri"])
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == len(LRS)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    statuses = {row["trial_id"]: row["status"] for row in _results_json(path, capsys)["trials"]}
    expected = {"finished": "FINISHED", "stopped early": "KILLED", "error": "FAILED"}
    for run in children:
        trial_id = run.data.tags["itwinai_ray.trial_id"]
        assert run.info.status == expected[statuses[trial_id]], trial_id
        result = next(r for r in grid if r.metrics.get("trial_id") == trial_id)
        assert float(run.data.params["lr"]) == result.config["lr"]
        history = sorted(client.get_metric_history(run.info.run_id, "loss"),
                         key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, len(history) + 1))
        assert len(history) == (result.metrics or {}).get("training_iteration", 0)
    assert "KILLED" in {r.info.status for r in children}


@pytest.mark.timeout(300)
def test_mlflow_ui_serves_the_experiment_over_http(experiments) -> None:
    path, _, _ = experiments["tiny"]
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(PYTHON).with_name("itwinai-ray")), "mlflow-ui", str(path), "--port", str(port)],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline, body = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                        f"{base}/experiments/get-by-name?experiment_name=tiny", timeout=5) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, proc.stdout.read().decode()[-3000:] if proc.poll() else "timeout"
        experiment_id = body["experiment"]["experiment_id"]
        request = urllib.request.Request(
            f"{base}/runs/search", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"experiment_ids": [experiment_id]}).encode())
        with urllib.request.urlopen(request, timeout=10) as r:
            runs = json.loads(r.read())["runs"]
        assert len(runs) == 1 + len(LRS)
    finally:
        stop_group(proc, signal.SIGTERM, 20)  # the UI and the server it started


@pytest.mark.timeout(300)
def test_zero_finished_trials_give_a_table_of_errors(experiments, capsys, tmp_path) -> None:
    path, grid, progress = experiments["broken"]
    assert all(r.error is not None for r in grid)
    assert main(["results", str(path), "--plot", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "ValueError: broken trial 1.0" in captured.out
    assert "ValueError: broken trial 2.0" in captured.out
    assert "no best configuration" in captured.out
    assert "No plots" in captured.out and not list(tmp_path.iterdir())
    data = _results_json(path, capsys)
    assert data["best"] is None and {t["status"] for t in data["trials"]} == {"error"}
    last = [ln for ln in progress.splitlines() if ln.startswith("[hpo ")][-1]
    assert "0 running, 0 finished, 2 errored (2/2 done)" in last


@pytest.mark.timeout(300)
def test_progress_lines_from_real_tune_events(experiments) -> None:
    path, grid, progress = experiments["tiny"]
    lines = [ln for ln in progress.splitlines() if ln.startswith("[hpo ")]
    assert len(lines) >= 2  # the first state and the final one
    first, last = lines[0], lines[-1]
    assert f"({0}/{len(LRS)} done)" in first
    stopped = sum(1 for r in grid if r.error is None
                  and r.metrics["training_iteration"] < EPOCHS)
    finished = sum(1 for r in grid if r.error is None) - stopped
    assert f"0 running, {finished} finished, {stopped} stopped, 1 errored " \
           f"({len(LRS)}/{len(LRS)} done)" in last
    best = grid.get_best_result(metric="loss", mode="min", scope="all")
    match = re.search(r"best loss \(min, best epoch\): (\S+) \(trial (\S+)\)", last)
    assert match and float(match.group(1)) == pytest.approx(best.metrics["loss"], rel=1e-3)
    assert match.group(2) == best.metrics["trial_id"]
    assert "ETA 0:00:00" in last
