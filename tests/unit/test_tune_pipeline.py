"""The run_trial path: checks before Ray starts and the CLI form. A metric never reported, on a
real local Ray: tests/e2e/test_tune_pipeline_e2e.py.
"""

from __future__ import annotations

import pytest
from testkit import ROOT

from itwinai_ray.cli import main
from itwinai_ray.config.loader import load_yaml
from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning import pipeline_hpo
from itwinai_ray.tuning.context import WorkerContext
from itwinai_ray.tuning.settings import RunSettings, TuneSettings
from itwinai_ray.tuning.trial import TrialReporter

QUICK = ROOT / "tutorials" / "01-quickstart-hpo"
TRAINER = "training_pipeline.init_args.steps.2.init_args"
LR = {"type": "loguniform", "lower": 1e-4, "upper": 1e-2}


def plan(space, tune=None, raw=None):
    return pipeline_hpo.plan_pipeline_hpo(
        raw or load_yaml(QUICK / "pipeline.yaml"), "training_pipeline", space,
        TuneSettings.from_any(tune or {"metric": "val_loss", "mode": "min"}),
        RunSettings.from_any({}), source="pipeline.yaml")


def test_plan_accepts_top_level_variables_and_full_paths() -> None:
    hpo = plan({"optim_lr": LR, f"{TRAINER}.config.num_layers": {"type": "choice",
                                                                 "categories": [1, 2]}})
    assert set(hpo.plan.space) == {"optim_lr", f"{TRAINER}.config.num_layers"}
    assert hpo.plan.max_epochs == 8
    assert hpo.plan.metric == "val_loss"


@pytest.mark.parametrize("key, expected", [
    ("optim_lrr", "optim_lr"),
    (f"{TRAINER}.config.hiden_size", f"{TRAINER}.config.hidden_size"),
    (f"{TRAINER}.epoch", f"{TRAINER}.epochs"),
])
def test_unknown_path_names_the_closest_paths_before_ray_starts(key, expected) -> None:
    import ray

    with pytest.raises(ConfigurationError) as err:
        plan({key: LR})
    message = str(err.value)
    assert f"'{key}' is not a path in pipeline.yaml" in message
    assert expected in message.split("Closest paths:")[1]
    assert not ray.is_initialized()


def test_a_sampled_value_the_pipeline_refuses_fails_before_ray() -> None:
    with pytest.raises(ConfigurationError, match="batch_size"):
        plan({"batch_size": {"type": "uniform", "lower": 8.5, "upper": 9.5}})


def test_pipeline_must_have_one_plain_torch_trainer() -> None:
    hpo_yaml = load_yaml(ROOT / "tutorials" / "02-distributed-hpo" / "hpo.yaml")
    with pytest.raises(ConfigurationError, match="already tunes itself"):
        plan({"epochs": {"type": "choice", "categories": [1, 2]}}, raw=hpo_yaml)
    raw = load_yaml(QUICK / "pipeline.yaml")
    del raw["training_pipeline"]["init_args"]["steps"][2]
    with pytest.raises(ConfigurationError, match="exactly one TorchTrainer"):
        plan({"epochs": {"type": "choice", "categories": [1, 2]}}, raw=raw)


def test_empty_space_and_unknown_file_section(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="search space is empty"):
        plan({})
    bad = tmp_path / "space.yaml"
    bad.write_text("search_space: {optim_lr: {type: uniform, lower: 0.1, upper: 0.2}}\n"
                   "tune_confg: {num_samples: 2}\n")
    with pytest.raises(ConfigurationError, match="tune_confg"):
        pipeline_hpo.read_hpo_file(bad)


def test_cli_tune_bad_path_is_a_one_line_error(tmp_path, capsys) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: loguniform, lower: 1.0e-4, upper: 1.0e-2}\n")
    code = main(["tune", "--config", str(QUICK / "pipeline.yaml"), "--search-space", str(space)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: Search-space key 'learning_rate'")
    assert err.count("\n") == 1


def test_report_without_the_tuned_metric_fails_naming_it() -> None:
    reports = []
    ctx = WorkerContext(world_size=1, rank=0, local_rank=0, local_world_size=1, node_rank=0,
                        trial_id="t", trial_dir=".", resume_checkpoint_dir=None,
                        _report_fn=lambda m, c: reports.append(m), required_metrics=("val_acc",))
    reporter = TrialReporter(ctx)
    with pytest.raises(ConfigurationError) as err:
        reporter._payload({"loss": 0.5, "val_loss": 0.4}, epoch=0)
    assert "'val_acc'" in str(err.value) and "val_loss" in str(err.value)
    assert not reports
