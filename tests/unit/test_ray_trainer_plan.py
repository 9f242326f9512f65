"""RayTorchTrainer checks that need no cluster: they fail before Ray starts.

Kept apart from test_ray_trainer.py, whose module-scoped Ray cluster would make
``ray.is_initialized()`` true here.
"""

from __future__ import annotations

import pytest
from testkit import ROOT

from itwinai_ray.config import load_pipeline
from itwinai_ray.errors import ConfigurationError, SearchSpaceError
from itwinai_ray.integrations.ray_trainer import RayTorchTrainer

CONFIG = ROOT / "tests" / "configs" / "hpo_digits.yaml"

def test_search_space_typo_fails_before_ray_starts(digits_split) -> None:
    import ray

    pipe = load_pipeline(CONFIG, "hpo_pipeline",
                         overrides=["+hpo_pipeline.init_args.steps.2.init_args.search_space"
                                    ".optim_lrr={type: uniform, lower: 0.1, upper: 0.2}"])
    with pytest.raises(SearchSpaceError, match=r"'optim_lrr' is not read.*Did you mean "
                                               r"'optim_lr'"):
        pipe.execute()
    assert not ray.is_initialized()


def test_a_new_search_space_key_goes_into_the_config_as_in_itwinai(caplog) -> None:
    """itwinai merges every sampled key into the config (a trainer may read one that only the
    search space gives); a key far from every known one is accepted with a warning that
    names the likely intended key (itwinai's own fashion-mnist tutorial tunes learning_rate)."""
    from itwinai_ray.tuning.trial import apply_trial_values

    trainer = RayTorchTrainer(config={"hidden_size": 8}, ray_search_space={
        "learning_rate": {"type": "uniform", "lower": 1e-4, "upper": 1e-3},
        "my_dropout": {"type": "choice", "categories": [0.0, 0.5]}})
    with caplog.at_level("WARNING", logger="itwinai_ray"):
        trainer.plan()
    assert "'learning_rate' is not a setting" in caplog.text
    assert "If you meant 'optim_lr', rename it." in caplog.text
    apply_trial_values(trainer, {"my_dropout": 0.5, "epochs": 3, "hidden_size": 16})
    assert trainer.config.my_dropout == 0.5 and trainer.config.hidden_size == 16
    assert trainer.epochs == 3 and "epochs" not in trainer.config.known_keys()


def test_settings_are_validated_at_construction() -> None:
    with pytest.raises(ConfigurationError, match=r"Unknown key 'num_worker'.*num_workers"):
        RayTorchTrainer(scaling_config={"num_worker": 2})
    with pytest.raises(ConfigurationError, match="num_samples is 0"):
        RayTorchTrainer(tune_config={"num_samples": 0})
    with pytest.raises(ConfigurationError, match="Both 'tune_config' and its itwinai name"):
        RayTorchTrainer(tune_config={}, ray_tune_config={})


def test_itwinai_ray_config_objects_are_accepted() -> None:
    from ray.train import ScalingConfig
    from ray.tune import CheckpointConfig, RunConfig, TuneConfig
    from ray.tune.schedulers import ASHAScheduler

    trainer = RayTorchTrainer(
        config={"hidden_size": 8}, epochs=4,
        ray_scaling_config=ScalingConfig(num_workers=2),
        ray_tune_config=TuneConfig(num_samples=3, scheduler=ASHAScheduler(
            metric="val_loss", mode="max", max_t=4, grace_period=1)),
        ray_run_config=RunConfig(storage_path="/tmp/x", checkpoint_config=CheckpointConfig(
            num_to_keep=2)),
        ray_search_space={"hidden_size": {"type": "choice", "categories": [8, 16]}},
    )
    assert trainer.hpo.scaling.num_workers == 2
    assert trainer.hpo.tune.num_samples == 3
    assert trainer.hpo.run.checkpoint_num_to_keep == 2
    plan = trainer.plan()
    # itwinai semantics: no tune_config.metric, so the scheduler's metric and mode are used
    assert (plan.metric, plan.mode) == ("val_loss", "max")


@pytest.mark.parametrize(("space", "match"), [
    ({"batch_size": {"type": "uniform", "lower": 16.5, "upper": 64.5}},
     r"'batch_size' is an integer.*gives floats.*randint"),
    ({"batch_size": {"type": "grid_search", "values": [32, "large"]}},
     r"'batch_size' = 'large' is not a valid value: Input should be a valid integer"),
    ({"hidden_size": {"type": "uniform", "lower": 8, "upper": 64}},
     r"'hidden_size' is an integer"),
    ({"optimizer": {"type": "choice", "categories": ["adam", "sgdd"]}},
     r"Unknown optimizer 'sgdd'.*Did you mean 'sgd'"),
    ({"resume_from_checkpoint": {"type": "choice", "categories": ["a", "b"]}},
     r"'resume_from_checkpoint' is an argument of .* that cannot be tuned"),
])
def test_bad_values_fail_before_ray_starts(space, match) -> None:
    import ray

    trainer = RayTorchTrainer(trainer=load_pipeline(CONFIG, "training_pipeline")[-1],
                              search_space=space)
    with pytest.raises(ConfigurationError, match=match):
        trainer.plan()
    assert not ray.is_initialized()


def test_multi_objective_plans_lists_and_a_scheduler_must_name_its_metric() -> None:
    space = {"optim_lr": {"type": "uniform", "lower": 0.1, "upper": 0.2}}
    tune = {"metric": ["val_loss", "train_loss"], "mode": ["min", "min"], "search_alg": "optuna"}
    plan = RayTorchTrainer(config={"hidden_size": 8}, tune_config=tune,
                           search_space=space).plan()
    assert (plan.metric, plan.mode) == (["val_loss", "train_loss"], ["min", "min"])
    trainer = RayTorchTrainer(config={"hidden_size": 8},
                              tune_config={**tune, "scheduler": "asha"}, search_space=space)
    with pytest.raises(ConfigurationError, match=r"scheduler: \{name: asha, metric: val_loss\}"):
        trainer.plan()


def test_unsupported_ray_config_fields_are_an_error() -> None:
    from ray.tune import RunConfig

    with pytest.raises(ConfigurationError, match=r"RunConfig\(stop=...\).*not supported"):
        RayTorchTrainer(ray_run_config=RunConfig(stop={"training_iteration": 3}))
    # a Ray RunConfig without storage_path keeps our default, not Ray's ~/ray_results
    assert RayTorchTrainer(ray_run_config=RunConfig(name="x")).hpo.run.storage_path == "ray_results"
