"""Unit tests of the per-trial resource arithmetic (no Ray)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from itwinai_ray.errors import ConfigurationError, ResourceError
from itwinai_ray.tuning.resources import (
    check_feasible,
    check_worker_fits_a_node,
    max_concurrent_trials,
    normalize_resources,
    trial_need,
)


def test_normalize_defaults_and_names() -> None:
    assert normalize_resources(None, use_gpu=False) == {"CPU": 1.0}
    assert normalize_resources(None, use_gpu=True) == {"CPU": 1.0, "GPU": 1.0}
    assert normalize_resources({"cpu": 2, "gpu": 0.5, "tpu_x": 1}, use_gpu=True) == {
        "CPU": 2.0, "GPU": 0.5, "tpu_x": 1.0}


def test_normalize_rejects_gpu_without_use_gpu_and_negative() -> None:
    with pytest.raises(ConfigurationError, match="1 GPU but use_gpu is False"):
        normalize_resources({"GPU": 1}, use_gpu=False)
    with pytest.raises(ConfigurationError, match=r"resources_per_worker\['CPU'\] is -1"):
        normalize_resources({"CPU": -1}, use_gpu=False)


def test_trial_need_worker_group_adds_driver_overhead() -> None:
    assert trial_need(2, None, use_gpu=False) == pytest.approx({"CPU": 2.01})
    assert trial_need(4, {"CPU": 2}, use_gpu=True, trial_overhead_cpu=0.1) == pytest.approx(
        {"CPU": 8.1, "GPU": 4.0})


def test_trial_need_fast_path_has_no_overhead() -> None:
    assert trial_need(1, {"CPU": 3}, use_gpu=True) == {"CPU": 3.0, "GPU": 1.0}


def test_trial_need_rejects_bad_values() -> None:
    with pytest.raises(ConfigurationError, match="num_workers is 0"):
        trial_need(0, None, use_gpu=False)
    with pytest.raises(ConfigurationError, match="trial_overhead_cpu is 0"):
        trial_need(2, None, use_gpu=False, trial_overhead_cpu=0)


def test_check_feasible_cpu_message_names_both_numbers_and_fix() -> None:
    need = trial_need(8, None, use_gpu=False)
    with pytest.raises(
        ResourceError,
        match=r"One trial needs 8\.01 CPU \(8 workers x 1 CPU \+ 0\.01 for the trial driver\) "
              r"but the cluster has 4 CPU\. Lower scaling_config\.num_workers or "
              r"resources_per_worker, or add nodes\.",
    ):
        check_feasible(need, {"CPU": 4.0}, num_workers=8, resources_per_worker=None)


def test_check_feasible_gpu_and_custom() -> None:
    need = trial_need(2, {"CPU": 1, "GPU": 1, "accel": 2}, use_gpu=True)
    with pytest.raises(ResourceError, match=r"2 GPU \(2 workers x 1 GPU\) but the cluster has "
                                            r"1 GPU.*4 accel .*has 0 accel.*add nodes with GPU, "
                                            r"accel\."):
        check_feasible(need, {"CPU": 8, "GPU": 1}, num_workers=2,
                       resources_per_worker={"CPU": 1, "GPU": 1, "accel": 2})


def test_check_feasible_without_explanation_and_ok_case() -> None:
    check_feasible({"CPU": 4.0}, {"CPU": 4.0})  # exactly full is fine
    with pytest.raises(ResourceError, match=r"^One trial needs 5 CPU but the cluster has 4 CPU"):
        check_feasible({"CPU": 5.0}, {"CPU": 4.0})


def test_fast_path_message() -> None:
    with pytest.raises(ResourceError, match=r"1 worker x 8 CPU, run inside the trial"):
        check_feasible(trial_need(1, {"CPU": 8}, False), {"CPU": 4}, num_workers=1,
                       resources_per_worker={"CPU": 8})


def test_worker_must_fit_one_node() -> None:
    nodes = [{"CPU": 2.0}, {"CPU": 2.0}]
    check_worker_fits_a_node({"CPU": 2.0}, nodes)
    with pytest.raises(ResourceError, match=r"One worker needs 3 CPU on a single node, but the "
                                            r"largest node has 2 CPU"):
        check_worker_fits_a_node({"CPU": 3.0}, nodes)


@pytest.mark.parametrize(
    ("need", "capacity", "expected"),
    [
        ({"CPU": 2.01}, {"CPU": 4.0}, 1),   # the measured 4.02 > 4 case: only one fits
        ({"CPU": 2.01}, {"CPU": 5.0}, 2),
        ({"CPU": 1.0}, {"CPU": 4.0}, 4),    # exact division, no float loss
        ({"CPU": 0.1}, {"CPU": 0.3}, 3),    # 0.3 / 0.1 = 2.9999999999999996
        ({"CPU": 4.01, "GPU": 4.0}, {"CPU": 64.0, "GPU": 8.0}, 2),  # GPU-bound
    ],
)
def test_max_concurrent_trials(need: dict, capacity: dict, expected: int) -> None:
    assert max_concurrent_trials(need, capacity) == expected


def test_max_concurrent_user_value_capped_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert max_concurrent_trials({"CPU": 2.01}, {"CPU": 8.0}, user_value=10) == 3
    assert "max_concurrent_trials=10 is more than the cluster can run at once (3" in caplog.text
    assert max_concurrent_trials({"CPU": 2.01}, {"CPU": 8.0}, user_value=2) == 2
    assert max_concurrent_trials({"CPU": 2.01}, {"CPU": 8.0}, user_value=0) == 3


def test_max_concurrent_infeasible_raises() -> None:
    with pytest.raises(ResourceError, match="but the cluster has 1 CPU"):
        max_concurrent_trials({"CPU": 2.01}, {"CPU": 1.0})


def test_backend_modules_do_not_import_ray() -> None:
    code = ("import sys, itwinai_ray.tuning.resources, itwinai_ray.backends.ray.driver; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_local_ray_is_sized_so_that_one_trial_fits(monkeypatch) -> None:
    """Issue 15, part 3: 2 workers x 1 CPU (+0.01) on a 2-core laptop starts a local Ray of 3
    logical CPUs; a named cluster or an explicit num_cpus is left as it is."""
    from itwinai_ray.tuning.resources import size_local_ray, trial_need

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    need = trial_need(2, {"CPU": 1}, False)
    ray_init, line = size_local_ray({}, need, cpu_count=2)
    assert ray_init == {"num_cpus": 3} and "3 logical CPUs" in line and "2.01 CPU" in line
    assert size_local_ray({}, trial_need(1, None, False), cpu_count=2) == ({}, None)
    assert size_local_ray({"num_cpus": 2}, need, cpu_count=2) == ({"num_cpus": 2}, None)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert size_local_ray({}, need, cpu_count=2) == ({}, None)


def test_a_local_ray_too_small_names_the_ray_init_fix() -> None:
    """Issue 15, part 3: for a local Ray this run started, the infeasibility error also names
    the ray_init setting that fixes it (a named cluster keeps the plain error)."""
    from itwinai_ray.tuning.resources import local_ray_hint, trial_need

    need = trial_need(2, {"CPU": 1}, False)  # 2.01 CPU
    assert local_ray_hint({"num_cpus": 2}, need) == (
        "This run started a local Ray with ray_init {'num_cpus': 2}: set ray_init: "
        "{num_cpus: 3} (or more) so that one trial fits.")
    gpu = trial_need(2, {"CPU": 1, "GPU": 1}, True)
    assert "{num_cpus: 3, num_gpus: 2}" in local_ray_hint({"num_cpus": 1, "num_gpus": 1}, gpu)
    assert local_ray_hint({"num_cpus": 4}, need) is None  # CPUs were not the problem
    assert local_ray_hint({}, need) is None  # sized by size_local_ray
