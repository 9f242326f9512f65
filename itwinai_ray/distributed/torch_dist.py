"""Strategies on a torch.distributed process group (``ddp``, ``deepspeed``): shared code.

Processes are started by a launcher: torchrun, srun, or Ray Train (which creates the process
group itself; :meth:`TorchDistributedStrategy.init` then adopts it and never destroys it).
Ranks, sizes and collectives live here once; subclasses only wrap the model.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from itwinai_ray.distributed.base import Strategy
from itwinai_ray.errors import StrategyError

_BACKENDS = ("auto", "nccl", "gloo", "mpi")


@dataclass(frozen=True)
class LaunchEnv:
    """Ranks and sizes of this process as set by its launcher."""

    launcher: str
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def _int(environ: Mapping[str, str], key: str) -> int:
    try:
        return int(environ[key])
    except ValueError as err:
        raise StrategyError(f"Environment variable {key}={environ[key]!r} is not an integer") from err


def _slurm_tasks_per_node(environ: Mapping[str, str]) -> int:
    """Tasks on this node: SLURM_NTASKS_PER_NODE, else SLURM_TASKS_PER_NODE ('4(x2),3')."""
    for key in ("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
        match = re.match(r"\s*(\d+)", environ.get(key, ""))
        if match:
            return int(match.group(1))
    nodes = int(environ.get("SLURM_NNODES", "1") or 1)
    return max(_int(environ, "SLURM_NTASKS") // max(nodes, 1), 1)


def read_launch_env(environ: Mapping[str, str] | None = None, strategy: str = "ddp") -> LaunchEnv:
    """Read ranks from torchrun's or srun's variables (``os.environ`` by default).

    Raises:
        StrategyError: no launcher variables, or MASTER_ADDR/MASTER_PORT missing.
    """
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int(env, "WORLD_SIZE")
        launch = LaunchEnv(
            launcher="torchrun",
            rank=_int(env, "RANK"),
            world_size=world,
            local_rank=_int(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0,
            local_world_size=_int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else world,
        )
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        launch = LaunchEnv(
            launcher="srun",
            rank=_int(env, "SLURM_PROCID"),
            world_size=_int(env, "SLURM_NTASKS"),
            local_rank=_int(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0,
            local_world_size=_slurm_tasks_per_node(env),
        )
    else:
        raise StrategyError(
            f"strategy '{strategy}' needs a launcher that starts one process per device: run with "
            f"{'`horovodrun --gloo -np N ...`, ' if strategy == 'horovod' else ''}"
            "`torchrun --nproc_per_node=N ...` or `srun ...` (no RANK/WORLD_SIZE or "
            "SLURM_PROCID/SLURM_NTASKS found), or use `strategy: none` for a single process"
        )
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
    if missing:
        raise StrategyError(
            f"strategy '{strategy}' under {launch.launcher} needs {' and '.join(missing)} in the "
            "environment. HINT: in the job script, before srun, add\n"
            '  export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
            "  export MASTER_PORT=29500"
        )
    return launch


class TorchDistributedStrategy(Strategy):
    """Base of strategies that run on a torch.distributed process group.

    Args:
        backend: "auto" (nccl with CUDA, else gloo), "nccl", "gloo" or "mpi".
        timeout_s: timeout of collective operations, in seconds.
        **settings: the subclass's own settings (kept in ``self.settings``).
    """

    def __init__(self, backend: str = "auto", timeout_s: float = 1800, **settings: Any) -> None:
        if backend not in _BACKENDS:
            raise StrategyError(
                f"Unknown backend {backend!r} for strategy '{self.name}'. "
                f"Available: {', '.join(_BACKENDS)}"
            )
        if timeout_s <= 0:
            raise StrategyError(f"The value of `timeout_s` is {timeout_s}, but must be > 0")
        super().__init__(backend=backend, timeout_s=timeout_s, **settings)
        self.backend = backend
        self.timeout_s = float(timeout_s)
        self._owns_group = False
        self._launch: LaunchEnv | None = None

    @property
    def owns_process_group(self) -> bool:
        """True when :meth:`init` created the process group (so :meth:`clean_up` destroys it)."""
        return self._owns_group

    def _resolve_backend(self) -> str:
        if self.backend == "auto":
            return "nccl" if torch.cuda.is_available() else "gloo"
        if self.backend == "nccl" and not torch.cuda.is_available():
            raise StrategyError("backend 'nccl' needs CUDA, which is not available: use 'gloo'")
        return self.backend

    def init(self) -> None:
        """Adopt an existing process group, or create one from the launcher's variables."""
        if self._initialized:
            return
        if not dist.is_available():
            raise StrategyError(
                f"strategy '{self.name}' needs torch.distributed, unavailable in this build")
        if dist.is_initialized():
            world = dist.get_world_size()
            env = os.environ
            self._launch = LaunchEnv(
                launcher="existing",
                rank=dist.get_rank(),
                world_size=world,
                local_rank=int(env.get("LOCAL_RANK", dist.get_rank())),
                local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
            )
            self._owns_group = False
        else:
            launch = read_launch_env(strategy=self.name)
            dist.init_process_group(
                backend=self._resolve_backend(),
                init_method="env://",
                rank=launch.rank,
                world_size=launch.world_size,
                timeout=timedelta(seconds=self.timeout_s),
            )
            self._launch = launch
            self._owns_group = True
        if torch.cuda.is_available():
            torch.cuda.set_device(self.device())
        self._initialized = True

    def clean_up(self) -> None:
        """Destroy the process group only if :meth:`init` created it.

        Let go of DDP-wrapped models first (keep ``unwrap(model)``, as the trainer does): a
        DDP wrapper still alive when its group is destroyed can abort the process at exit
        (gloo, "terminate called without an active exception", seen under torchrun on a
        loaded machine). Unreachable wrappers (reference cycles) are collected here first.
        """
        if self._owns_group and dist.is_available() and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()
        self._owns_group = False
        self._initialized = False
        self._launch = None

    def _env(self) -> LaunchEnv:
        self._require_init()
        assert self._launch is not None
        return self._launch

    def global_rank(self) -> int:
        """Rank in the process group."""
        return self._env().rank

    def local_rank(self) -> int:
        """Rank on this node."""
        return self._env().local_rank

    def global_world_size(self) -> int:
        """Size of the process group."""
        return self._env().world_size

    def local_world_size(self) -> int:
        """Processes on this node."""
        return self._env().local_world_size

    def _comm_device(self) -> torch.device:
        """Where tensors must live for collectives: the GPU for nccl, else the CPU."""
        return self.device() if dist.get_backend() == "nccl" else torch.device("cpu")

    def barrier(self) -> None:
        """Block until all ranks arrive."""
        self._require_init()
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[self.device().index])
        else:
            dist.barrier()

    def allgather_obj(self, obj: Any) -> list[Any]:
        """Objects of all ranks, on every rank."""
        self._require_init()
        out: list[Any] = [None] * self.global_world_size()
        dist.all_gather_object(out, obj)
        return out

    def allgather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Same-shaped tensors of all ranks, on every rank, on the input's device."""
        self._require_init()
        local = tensor.detach().to(self._comm_device()).contiguous()
        out = [torch.empty_like(local) for _ in range(self.global_world_size())]
        dist.all_gather(out, local)
        return [t.to(tensor.device) for t in out]

    def reduce_mean(self, value: float) -> float:
        """Mean over ranks, received by every rank (one all_reduce)."""
        self._require_init()
        total = torch.tensor(float(value), dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return float(total.item()) / self.global_world_size()
