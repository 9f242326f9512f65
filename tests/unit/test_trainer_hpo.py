"""RayTorchTrainer holds its HPO driving (TrainerHPO); the workers get the trainer only.

The worker function that RayTorchTrainer hands to the backend is captured (``run_hpo``
replaced), pickled as Ray would, checked for driver state, and run here without Ray with a
real WorkerContext: the user's hooks run and the trial's values are applied.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hpo_trainers import SeenDigitsTrainer, SubclassedHPOTrainer

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.integrations import hpo as hpo_module
from itwinai_ray.integrations.ray_trainer import RayTorchTrainer
from itwinai_ray.tuning.context import WorkerContext

#: Names that only the driver holds: none may travel to a worker.
DRIVER_ONLY = (b"TrainerHPO", b"HPOResults", b"RunSettings", b"TuneSettings",
               b"ScalingSettings", b"TorchSettings")
SPACE = {"optim_lr": {"type": "choice", "categories": [0.01, 0.02]}}


def _shipped_worker_fn(monkeypatch, trainer: RayTorchTrainer, digits_split) -> Any:
    captured: dict[str, Any] = {}

    def fake_run_hpo(worker_fn: Any, plan: Any, **settings: Any) -> str:
        captured["worker_fn"] = worker_fn
        return "results"

    monkeypatch.setattr(hpo_module, "run_hpo", fake_run_hpo)
    *_, results = trainer.execute(*digits_split)
    assert results == "results" and trainer.results == "results" == trainer.tune_result_grid
    return captured["worker_fn"]


def _run_one_worker(data: bytes, values: dict[str, Any]) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = []
    ctx = WorkerContext(world_size=1, rank=0, local_rank=0, local_world_size=1, node_rank=0,
                        trial_id="t0", trial_dir=".", resume_checkpoint_dir=None,
                        _report_fn=lambda metrics, ckpt: reports.append(metrics))
    pickle.loads(data)(values, ctx)
    return reports


def test_a_subclass_ships_a_copy_without_its_hpo_driving(monkeypatch, tmp_path,
                                                         digits_split) -> None:
    trainer = SubclassedHPOTrainer(
        config={"hidden_size": 8, "optim_lr": 0.01, "batch_size": 64}, epochs=2,
        strategy="none", save_best=False, ray_search_space=SPACE,
        ray_run_config={"storage_path": str(tmp_path)})
    data = pickle.dumps(_shipped_worker_fn(monkeypatch, trainer, digits_split))
    assert not [name for name in DRIVER_ONLY if name in data]
    assert trainer.hpo is not None  # the driver keeps its own
    reports = _run_one_worker(data, {"optim_lr": 0.02})
    assert [r["epoch"] for r in reports] == [1, 2]
    assert reports[0]["seen_lr"] == pytest.approx(0.02)  # the user's hook, the trial's value


def test_a_wrapped_trainer_ships_alone(monkeypatch, tmp_path, digits_split) -> None:
    inner = SeenDigitsTrainer(config={"hidden_size": 8, "optim_lr": 0.01, "batch_size": 64},
                              epochs=1, strategy="none", save_best=False)
    trainer = RayTorchTrainer(trainer=inner, ray_search_space=SPACE,
                              ray_run_config={"storage_path": str(tmp_path)})
    data = pickle.dumps(_shipped_worker_fn(monkeypatch, trainer, digits_split))
    assert not [name for name in (*DRIVER_ONLY, b"RayTorchTrainer") if name in data]
    reports = _run_one_worker(data, {"optim_lr": 0.02})
    assert reports[0]["seen_lr"] == pytest.approx(0.02)


def test_the_worker_copy_drops_an_earlier_runs_results(tmp_path) -> None:
    from itwinai_ray.tuning.results import HPOResults

    trainer = SubclassedHPOTrainer(config={"hidden_size": 8, "optim_lr": 0.01}, epochs=1,
                                   strategy="none", ray_search_space=SPACE,
                                   ray_run_config={"storage_path": str(tmp_path)})
    assert b"TrainerHPO" in pickle.dumps(trainer)  # (what the check below would catch)
    trainer.results = trainer.tune_result_grid = HPOResults("loss", "min", [])  # a run's
    copy = trainer.worker_trainer()
    assert copy.hpo is None and copy is not trainer and trainer.hpo is not None
    assert copy.results is None and copy.tune_result_grid is None
    assert not [name for name in DRIVER_ONLY if name in pickle.dumps(copy)]
    trainer.results = "a user's own value"  # not ours: kept
    assert trainer.worker_trainer().results == "a user's own value"
    with pytest.raises(ConfigurationError, match="holds no HPO settings"):
        copy.plan()


def test_not_tunable_is_the_trainers_plumbing_and_the_hpo_arguments() -> None:
    """Derived, not listed: RayTorchTrainer's own keyword arguments join TorchTrainer's."""
    from itwinai_ray import TorchTrainer

    hpo_args = {"trainer", "scaling_config", "tune_config", "run_config", "search_space",
                "ray_init", "ray_scaling_config", "ray_tune_config", "ray_run_config",
                "ray_search_space"}
    assert RayTorchTrainer.not_tunable_args == TorchTrainer.not_tunable_args | hpo_args
    assert {"config", "model", "ray_torch_config"} <= TorchTrainer.not_tunable_args
    assert "epochs" not in RayTorchTrainer.not_tunable_args
