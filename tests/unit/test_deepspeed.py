"""DeepSpeed strategy: bad input and settings, without DeepSpeed running. ZeRO 1/2 under
torchrun and under RayTorchTrainer: tests/e2e/test_deepspeed_e2e.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT

from itwinai_ray.distributed import DeepSpeedStrategy, get_strategy
from itwinai_ray.distributed.deepspeed import deepspeed_available
from itwinai_ray.errors import MissingDependencyError, StrategyError

needs_deepspeed = pytest.mark.skipif(
    not deepspeed_available() and not os.environ.get("CI"),
    reason='deepspeed not installed: pip install -e ".[deepspeed]"')
WORKER = ROOT / "tests" / "_deepspeed_worker.py"
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
               "MASTER_PORT")
CPU_ADAM = {"optimizer": {"type": "Adam", "params": {"torch_adam": True}}}


# ---- bad input: before any process starts ------------------------------------------------
@needs_deepspeed
def test_unknown_config_key_names_the_closest_key() -> None:
    with pytest.raises(StrategyError, match=r"Unknown DeepSpeed config key 'zero_optimisation'"
                                            r"\. Did you mean 'zero_optimization'\?"):
        get_strategy({"name": "deepspeed", "config": {"zero_optimisation": {"stage": 1}}})
    with pytest.raises(StrategyError, match="Unknown DeepSpeed config key 'train_micro_batch'"):
        DeepSpeedStrategy(config={"train_micro_batch": 8})


@pytest.mark.parametrize(("extra", "match"), [
    ({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}},
     r"ZeRO stage 3 with zero_optimization.offload_param is not supported on CPU.*"
     r"zero_force_ds_cpu_optimizer: false"),
    ({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}},
     r"ZeRO stage 2 with zero_optimization.offload_optimizer is not supported on CPU"),
    ({"zero_optimization": {"stage": 5}}, r"ZeRO stage 5 does not exist: use 0, 1, 2 or 3"),
    ({"fp16": {"enabled": True}}, r"fp16 is not supported on CPU: use bf16"),
])
def test_unsupported_zero_setups_on_cpu(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(StrategyError, match=match):
        DeepSpeedStrategy(config={**CPU_ADAM, **extra})
    # Offload works on CPU with torch's Adam (measured): that one is accepted.
    DeepSpeedStrategy(config={**CPU_ADAM, "zero_force_ds_cpu_optimizer": False,
                              "zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}})


def test_config_from_json_file_and_bad_paths(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 2}, **CPU_ADAM}))
    strategy = DeepSpeedStrategy(config=str(path))
    assert strategy.ds_config["zero_optimization"] == {"stage": 2}
    with pytest.raises(StrategyError, match="does not exist: give the path of a JSON file"):
        DeepSpeedStrategy(config=str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{stage: 1")
    with pytest.raises(StrategyError, match="is not valid JSON"):
        DeepSpeedStrategy(config=str(tmp_path / "bad.json"))


def test_micro_batch_comes_from_the_batch_size_unless_set() -> None:
    import torch

    strategy = DeepSpeedStrategy(config={"zero_optimization": {"stage": 1}, **CPU_ADAM})
    with pytest.raises(StrategyError, match="cannot derive train_micro_batch_size_per_gpu"):
        strategy.engine_config()
    strategy.batch_size = 48  # what create_dataloader records
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.02)
    cfg = strategy.engine_config(opt)
    assert cfg["train_micro_batch_size_per_gpu"] == 48
    assert cfg["optimizer"]["params"] == {"torch_adam": True, "lr": 0.02}  # optim_lr tunable
    explicit = DeepSpeedStrategy(config={"train_micro_batch_size_per_gpu": 4,
                                         "optimizer": {"type": "Adam", "params": {"lr": 1.0}}})
    explicit.batch_size = 48
    cfg = explicit.engine_config(opt)
    assert cfg["train_micro_batch_size_per_gpu"] == 4 and cfg["optimizer"]["params"]["lr"] == 1.0


def test_missing_deepspeed_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from itwinai_ray.distributed import deepspeed as ds_module

    monkeypatch.setattr(ds_module, "deepspeed_available", lambda: False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'itwinai-ray\[deepspeed\]'"):
        DeepSpeedStrategy().init()
