"""The tutorials, run as their READMEs write them (every ```bash block, verbatim). Tutorial
02 runs in tests/e2e/test_dashboard_browser.py, which watches its HPO live in a browser.

Each block runs with ``bash -e`` in a fresh directory that links ``tutorials/`` and
``scripts/``, so the results land in the test's own ``runs/``. The assertions read the
files the commands produce.
"""

from __future__ import annotations

import json

import pytest
import yaml
from testkit import TUTORIALS, bash_blocks, run_bash
from testkit import tutorial_workdir as workdir


@pytest.mark.timeout(600)
def test_01_quickstart_runs_as_written(tmp_path) -> None:
    cwd = workdir(tmp_path)
    # The first block runs the tutorial; the next ones look at results (mlflow-ui serves).
    block = bash_blocks(TUTORIALS / "01-quickstart-hpo" / "README.md")[0]
    proc = run_bash(block, cwd, timeout=540)
    assert "HPO results, ranked by val_loss" in proc.stdout

    experiment = cwd / "runs" / "quickstart" / "quickstart"
    results = json.loads((experiment / "results.json").read_text())
    trials = results["trials"]
    assert len(trials) == 8
    statuses = [t["status"] for t in trials]
    assert "error" not in statuses, trials
    assert "stopped early" in statuses, statuses  # ASHA stopped at least one
    assert all(t["val_loss"] is not None for t in trials)
    stopped = [t for t in trials if t["status"] == "stopped early"]
    assert all(t["epochs"] < 8 for t in stopped)

    best = results["best"]["config"]
    assert set(best) == {"optim_lr", "batch_size", "hidden_size"}
    best_config = yaml.safe_load((experiment / "best_config.yaml").read_text())
    for key, value in best.items():  # the winning overrides, as top-level variables
        assert best_config[key] == pytest.approx(value)
    trainer = best_config["training_pipeline"]["init_args"]["steps"][2]
    assert trainer["init_args"]["config"]["optim_lr"] == "${optim_lr}"  # still wired
    # read_results.py printed the same best config; the re-run trained 8 epochs.
    assert f"best: {best}" in proc.stdout
    assert "epoch 8/8" in proc.stderr


@pytest.mark.timeout(400)
def test_run_trial_template_tunes_the_quickstart_pipeline(tmp_path) -> None:
    """The copy-and-adapt template: the trainer reports to Tune by itself (no reporter set)."""
    cwd = workdir(tmp_path)
    run_bash("python scripts/run_trial_template.py --config "
             "tutorials/01-quickstart-hpo/pipeline.yaml --num-samples 4 --num-cpus 2 "
             "--storage-path runs/template", cwd, timeout=360)
    experiment = cwd / "runs" / "template" / "run-trial"
    results = json.loads((experiment / "results.json").read_text())
    assert len(results["trials"]) == 4
    assert all(t["val_loss"] is not None and t["epochs"] >= 2 for t in results["trials"])
    # Tune holds the trainer's checkpoints (reported with the metrics).
    assert results["best"]["checkpoint"]
    assert len(list(experiment.glob("*/checkpoint_*"))) >= 4
    best_config = yaml.safe_load((experiment / "best_config.yaml").read_text())
    assert best_config["optim_lr"] == pytest.approx(results["best"]["config"]["optim_lr"])

