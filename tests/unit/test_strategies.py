"""Tests of itwinai_ray.distributed: registry, each strategy's contract, and DDP on gloo in
one process. Real DDP under torchrun: tests/e2e/test_strategies_e2e.py.
"""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import torch.distributed as dist
from testkit import free_port
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from itwinai_ray.distributed import (
    STRATEGIES,
    DeepSpeedStrategy,
    HorovodStrategy,
    NonDistributedStrategy,
    Strategy,
    TorchDDPStrategy,
    available_strategies,
    get_strategy,
    read_launch_env,
)
from itwinai_ray.errors import StrategyError

LAUNCH_VARS = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE",
    "SLURM_TASKS_PER_NODE", "SLURM_NNODES",
)


@pytest.fixture
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


# ---- registry -------------------------------------------------------------------------
def test_registry_names_match_classes() -> None:
    assert available_strategies() == ["ddp", "deepspeed", "horovod", "none"]
    for name, cls in STRATEGIES.items():
        assert cls.name == name
        assert issubclass(cls, Strategy)


@pytest.mark.parametrize(
    ("spec", "cls"),
    [("ddp", TorchDDPStrategy), ("DDP", TorchDDPStrategy), (" None ", NonDistributedStrategy),
     ("DeepSpeed", DeepSpeedStrategy), ("horovod", HorovodStrategy)],
)
def test_get_strategy_by_name_is_case_insensitive(spec: str, cls: type[Strategy]) -> None:
    assert type(get_strategy(spec)) is cls


def test_unknown_name_suggests_closest_and_lists_available() -> None:
    with pytest.raises(
        StrategyError,
        match=r"Unknown strategy 'dpp'\. Did you mean 'ddp'\? Available: ddp, deepspeed, horovod, none",
    ):
        get_strategy("dpp")
    with pytest.raises(StrategyError, match=r"Unknown strategy 'xyz'\. Available: ddp,") as info:
        get_strategy("xyz")
    assert "Did you mean" not in str(info.value)


def test_dict_spec_passes_kwargs_and_keeps_input() -> None:
    spec = {"name": "DDP", "backend": "gloo", "timeout_s": 10, "find_unused_parameters": True}
    strategy = get_strategy(spec)
    assert isinstance(strategy, TorchDDPStrategy)
    assert (strategy.backend, strategy.timeout_s, strategy.find_unused_parameters) == (
        "gloo", 10.0, True)
    assert spec["name"] == "DDP"  # input not mutated
    ds_config = {"zero_optimization": {"stage": 1}}
    assert get_strategy({"name": "deepspeed", "config": ds_config}).settings["config"] == ds_config


def test_dict_spec_errors() -> None:
    with pytest.raises(StrategyError, match="needs a 'name' key"):
        get_strategy({"backend": "gloo"})
    with pytest.raises(StrategyError, match="Invalid arguments for strategy 'ddp'.*bakend"):
        get_strategy({"name": "ddp", "bakend": "gloo"})
    with pytest.raises(StrategyError, match="Unknown backend 'mpich'"):
        get_strategy({"name": "ddp", "backend": "mpich"})


def test_instance_class_and_bad_type() -> None:
    strategy = NonDistributedStrategy()
    assert get_strategy(strategy) is strategy
    assert isinstance(get_strategy(TorchDDPStrategy), TorchDDPStrategy)
    with pytest.raises(StrategyError, match="Cannot build a strategy from 3"):
        get_strategy(3)  # type: ignore[arg-type]


# ---- constructors ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_constructors_have_no_side_effects_and_pickle(name: str) -> None:
    environ = dict(os.environ)
    strategy = get_strategy(name)
    assert not dist.is_initialized()
    assert not strategy.is_initialized
    assert dict(os.environ) == environ
    clone = pickle.loads(pickle.dumps(strategy))
    assert type(clone) is type(strategy) and clone.settings == strategy.settings


def test_ddp_validates_arguments() -> None:
    with pytest.raises(StrategyError, match="timeout_s` is 0, but must be > 0"):
        TorchDDPStrategy(timeout_s=0)


# ---- DDP launcher environment -----------------------------------------------------------
def test_ddp_init_without_launcher_raises(no_launcher: pytest.MonkeyPatch) -> None:
    strategy = TorchDDPStrategy()
    with pytest.raises(
        StrategyError,
        match=r"strategy 'ddp' needs a launcher.*torchrun --nproc_per_node=N.*srun.*strategy: none",
    ):
        strategy.init()
    assert not strategy.is_initialized and not dist.is_initialized()


def test_ddp_methods_before_init_raise() -> None:
    strategy = TorchDDPStrategy()
    with pytest.raises(StrategyError, match=r"call strategy.init\(\) first"):
        strategy.global_rank()
    with pytest.raises(StrategyError, match=r"call strategy.init\(\) first"):
        strategy.distributed(nn.Linear(1, 1))


def test_read_launch_env_torchrun_and_srun() -> None:
    master = {"MASTER_ADDR": "n1", "MASTER_PORT": "29500"}
    env = read_launch_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                           "LOCAL_WORLD_SIZE": "2", **master})
    assert (env.launcher, env.rank, env.world_size, env.local_rank, env.local_world_size) == (
        "torchrun", 3, 4, 1, 2)
    env = read_launch_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_LOCALID": "1",
                           "SLURM_TASKS_PER_NODE": "2(x3)", **master})
    assert (env.launcher, env.rank, env.world_size, env.local_rank, env.local_world_size) == (
        "srun", 5, 6, 1, 2)
    env = read_launch_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_NNODES": "2",
                           **master})
    assert env.local_world_size == 4


def test_srun_without_master_addr_gives_hint() -> None:
    with pytest.raises(StrategyError, match=r"(?s)needs MASTER_ADDR and MASTER_PORT.*export MASTER_ADDR"):
        read_launch_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})
    with pytest.raises(StrategyError, match="WORLD_SIZE='two' is not an integer"):
        read_launch_env({"RANK": "0", "WORLD_SIZE": "two"})


def test_ddp_single_process_group_is_created_and_destroyed(
    no_launcher: pytest.MonkeyPatch,
) -> None:
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(free_port())}.items():
        no_launcher.setenv(key, value)
    strategy = TorchDDPStrategy(backend="gloo", timeout_s=30)
    try:
        strategy.init()
        assert dist.is_initialized() and strategy.owns_process_group
        assert strategy.reduce_mean(2.5) == 2.5
        assert strategy.gather_obj("a") == ["a"]
        model, _, _ = strategy.distributed(nn.Linear(2, 1))
        assert isinstance(strategy.unwrap(model), nn.Linear)
    finally:
        strategy.clean_up()
    assert not dist.is_initialized() and not strategy.is_initialized


# ---- none -------------------------------------------------------------------------------
def test_none_strategy_semantics() -> None:
    strategy = NonDistributedStrategy()
    strategy.init()
    strategy.init()
    assert strategy.is_initialized
    assert (strategy.global_rank(), strategy.local_rank()) == (0, 0)
    assert (strategy.global_world_size(), strategy.local_world_size()) == (1, 1)
    assert strategy.is_main_worker and strategy.device() == torch.device(
        "cuda:0" if torch.cuda.is_available() else "cpu")
    strategy.barrier()
    tensor = torch.ones(2)
    assert strategy.gather_obj({"a": 1}) == [{"a": 1}]
    assert strategy.allgather_obj(5) == [5]
    assert strategy.gather(tensor)[0] is tensor and strategy.allgather(tensor)[0] is tensor
    assert strategy.reduce_mean(3) == 3.0
    with pytest.raises(StrategyError, match="rank 1 does not exist"):
        strategy.gather_obj(1, dst_rank=1)
    model, optimizer, scheduler = nn.Linear(2, 1), object(), object()
    assert strategy.distributed(model, optimizer, scheduler) == (model, optimizer, scheduler)
    assert strategy.unwrap(model) is model
    loader = strategy.create_dataloader(TensorDataset(torch.arange(10)), batch_size=4)
    strategy.set_epoch(loader, 3)
    assert not isinstance(loader.sampler, DistributedSampler)
    assert [int(i) for (batch,) in loader for i in batch] == list(range(10))
    strategy.clean_up()
    assert not strategy.is_initialized


class _FakeRank(NonDistributedStrategy):
    """Pretends to be one of two ranks, to test dataloader sharding without processes."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def global_rank(self) -> int:
        return self.rank

    def global_world_size(self) -> int:
        return 2


def test_create_dataloader_shards_when_world_size_above_one() -> None:
    shards: list[list[int]] = []
    for rank in (0, 1):
        strategy = _FakeRank(rank)
        loader = strategy.create_dataloader(
            TensorDataset(torch.arange(10)), batch_size=3, shuffle=True, seed=7)
        assert isinstance(loader.sampler, DistributedSampler) and loader.sampler.seed == 7
        strategy.set_epoch(loader, 2)
        assert loader.sampler.epoch == 2
        shards.append([int(i) for (batch,) in loader for i in batch])
    assert sorted(shards[0] + shards[1]) == list(range(10))
