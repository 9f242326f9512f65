"""Worker-group trials run without Ray Train's placement-group cleaner when a registry
stands in for it (issue 19: its stop held ``fit()`` up to 12 s after the run)."""

from __future__ import annotations

import ray.train
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.placement_group_callback import (
    PlacementGroupCleanerCallback,
)

from itwinai_ray.backends.ray import _private
from itwinai_ray.backends.ray.train_run import RegistryTorchTrainer, torch_trainer_class


def _loop(config: dict) -> None:
    pass


def _trainer(cls: type) -> TorchTrainer:
    return cls(_loop, scaling_config=ray.train.ScalingConfig(num_workers=2),
               run_config=ray.train.RunConfig(name="t", storage_path="/tmp/unused"))


def test_without_cleaner_drops_only_the_cleaner() -> None:
    others = [object(), object()]
    kept = _private.without_placement_group_cleaner(
        [others[0], PlacementGroupCleanerCallback(), others[1]])
    assert kept == others


def test_registry_trainer_keeps_the_other_default_callbacks() -> None:
    ray_defaults = _trainer(TorchTrainer)._create_default_callbacks()
    ours = _trainer(RegistryTorchTrainer)._create_default_callbacks()
    assert any(isinstance(cb, PlacementGroupCleanerCallback) for cb in ray_defaults)
    assert not any(isinstance(cb, PlacementGroupCleanerCallback) for cb in ours)
    assert ([type(cb) for cb in ray_defaults if not isinstance(cb, PlacementGroupCleanerCallback)]
            == [type(cb) for cb in ours])


def test_the_cleaner_stays_without_a_registry() -> None:
    assert torch_trainer_class(True) is RegistryTorchTrainer
    assert torch_trainer_class(False) is TorchTrainer
