"""Horovod strategy: bad input and settings, without Horovod running. horovodrun with 2
processes and under RayTorchTrainer: tests/e2e/test_horovod_e2e.py.
"""

from __future__ import annotations

import os

import pytest
from testkit import ROOT

from itwinai_ray.distributed import HorovodStrategy, get_strategy
from itwinai_ray.distributed.horovod import horovod_available
from itwinai_ray.errors import StrategyError

needs_horovod = pytest.mark.skipif(
    not horovod_available() and not os.environ.get("CI"),
    reason="horovod not installed: run scripts/install_horovod.sh")
WORKER = ROOT / "tests" / "_horovod_worker.py"


def test_missing_horovod_names_the_install_script(monkeypatch: pytest.MonkeyPatch) -> None:
    from itwinai_ray.distributed import horovod as hvd_module

    monkeypatch.setattr(hvd_module, "horovod_available", lambda: False)
    with pytest.raises(StrategyError, match=r"run scripts/install_horovod\.sh"):
        HorovodStrategy().init()


def test_bad_settings_fail_when_built() -> None:
    with pytest.raises(StrategyError, match=r"Unknown op 'mean' for strategy 'horovod'"):
        get_strategy({"name": "horovod", "op": "mean"})
    with pytest.raises(StrategyError, match="backward_passes_per_step` is 0"):
        HorovodStrategy(backward_passes_per_step=0)
    with pytest.raises(StrategyError, match="Invalid arguments for strategy 'horovod'"):
        get_strategy({"name": "horovod", "scale_learning_rate": True})


def test_lr_scaling_scales_groups_and_scheduler() -> None:
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    HorovodStrategy._scale_lr(opt, sched, 4)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.4)
    assert opt.param_groups[0]["initial_lr"] == pytest.approx(0.4)
    assert sched.base_lrs == [pytest.approx(0.4)]
