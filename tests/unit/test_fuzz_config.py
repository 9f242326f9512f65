"""Fuzz: randomly corrupted HPO configs go through loading, settings and planning (no Ray
started). Each is accepted or rejected with the project's own error type (ItwinaiRayError);
never a raw exception from deep inside Ray, pydantic or Python, and never a hang.
"""

from __future__ import annotations

import copy
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itwinai_ray.config.instantiate import instantiate
from itwinai_ray.config.loader import load_yaml
from itwinai_ray.errors import ItwinaiRayError
from itwinai_ray.integrations.ray_trainer import RayTorchTrainer
from itwinai_ray.tuning.experiment import resume_target
from itwinai_ray.tuning.storage import check_storage

BASE: dict[str, Any] = {
    "scaling_config": {"num_workers": 2, "use_gpu": False, "resources_per_worker": {"CPU": 1}},
    "tune_config": {"num_samples": 4, "metric": "loss", "mode": "min",
                    "search_alg": "random",
                    "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
                    "max_concurrent_trials": 2, "time_budget_s": 60,
                    "stop": {"training_iteration": 3}},
    "run_config": {"name": "fuzz", "storage_path": "results", "checkpoint_frequency": 1,
                   "checkpoint_num_to_keep": 2, "max_failures": 1, "worker_max_failures": 1,
                   "fail_fast": False, "resume": False, "min_free_disk_gb": 0},
    "search_space": {
        "optim_lr": {"type": "loguniform", "lower": 1e-4, "upper": 1e-1},
        "batch_size": {"type": "choice", "categories": [32, 64, 128]},
        "hidden_size": {"type": "randint", "lower": 8, "upper": 64},
        "dropout": {"type": "uniform", "lower": 0.0, "upper": 0.5},
    },
}

# Values a user might type by mistake, plus the odd ones YAML can produce.
WEIRD = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "min", "max", "asha", "optuna", "grid", "random", "median", "fifo",
                     "hyperband", "pbt", "uniform", "loguniform", "choice", "grid_search",
                     "randint", "loss", "val_loss", "auto", "1e-3", "adam", "../x", "a/b",
                     "\x00", "~", "${oops}"]),
    st.text(max_size=8),
    st.lists(st.integers(-3, 200), max_size=3),
    st.dictionaries(st.sampled_from(["type", "lower", "upper", "q", "categories", "values",
                                     "name", "grid_search"]),
                    st.one_of(st.integers(-5, 5), st.floats(-1, 1), st.text(max_size=3)),
                    max_size=3),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(config: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    config = copy.deepcopy(config)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = _paths(config)
        path = data.draw(st.sampled_from(paths))
        parent: Any = config
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        action = data.draw(st.sampled_from(["replace", "delete", "add", "typo"]))
        if action == "replace":
            parent[key] = data.draw(WEIRD)
        elif action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=10))] = data.draw(WEIRD)
        elif action == "typo" and isinstance(parent, dict) and isinstance(key, str) and key:
            parent[key[:-1] + key[-1] * 2] = parent.pop(key)
    return config


def _plan(config: dict[str, Any]) -> None:
    """Everything that runs before Ray starts: building the step from its YAML node (as the
    config loader does), plan, storage and resume checks."""
    trainer = instantiate({"class_path": "itwinai_ray.RayTorchTrainer", "init_args": {
        "trainer": {"class_path": "itwinai_ray.examples.digits.DigitsTrainer",
                    "init_args": {"epochs": 3, "config": {
                        "batch_size": 64, "optim_lr": 0.01, "hidden_size": 16,
                        "dropout": 0.0}}},
        **config}}, "hpo_pipeline.steps.2")
    assert isinstance(trainer, RayTorchTrainer)
    plan = trainer.plan()
    storage = trainer.hpo.run.resolved_storage_path()
    check_storage(storage, trainer.hpo.run.min_free_disk_gb)
    resume_target(storage, plan.name, trainer.hpo.run)


def _assert_accepted_or_ours(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ItwinaiRayError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"raw {type(exc).__name__} for {args!r}:\n"
                    f"{''.join(traceback.format_exception(exc))}")


def test_base_config_is_accepted(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _plan(copy.deepcopy(BASE))


@pytest.mark.timeout(180)
@settings(max_examples=100, deadline=5000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_settings_are_accepted_or_rejected_with_our_errors(tmp_path, monkeypatch,
                                                                     data) -> None:
    monkeypatch.chdir(tmp_path)  # storage paths the fuzzer invents stay in here
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    _assert_accepted_or_ours(_plan, _mutate(BASE, data))


@pytest.mark.timeout(120)
@settings(max_examples=150, deadline=2000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_yaml_text_loads_or_fails_with_our_error(tmp_path, data) -> None:
    text = yaml.safe_dump({"hpo": BASE}, sort_keys=False)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 5))
        insert = data.draw(st.sampled_from(["", ":", "- ", "{", "}", "[", "]", "\t", "\n  ",
                                            "'", '"', "&a", "*a", "!!python/object:os.system",
                                            "!!binary", "%", "@", "${", "\x00", "é"]))
        text = text[:at] + insert + text[at + cut:]
    path = Path(tmp_path) / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8")
    _assert_accepted_or_ours(load_yaml, path)
