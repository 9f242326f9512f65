"""PyTorch DistributedDataParallel strategy (``strategy: ddp``).

Processes are started by a launcher: torchrun, srun, or Ray Train (which creates the process
group itself; :meth:`TorchDDPStrategy.init` then adopts it and never destroys it). Process
group, ranks and collectives come from
:class:`~itwinai_ray.distributed.torch_dist.TorchDistributedStrategy`.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from itwinai_ray.distributed.torch_dist import (
    LaunchEnv,
    TorchDistributedStrategy,
    read_launch_env,
)


class TorchDDPStrategy(TorchDistributedStrategy):
    """Data parallelism with :class:`torch.nn.parallel.DistributedDataParallel`.

    Args:
        backend: "auto" (nccl with CUDA, else gloo), "nccl", "gloo" or "mpi".
        timeout_s: timeout of collective operations, in seconds.
        find_unused_parameters: passed to DistributedDataParallel.
    """

    name: ClassVar[str] = "ddp"

    def __init__(
        self, backend: str = "auto", timeout_s: float = 1800, find_unused_parameters: bool = False
    ) -> None:
        super().__init__(
            backend=backend, timeout_s=timeout_s, find_unused_parameters=find_unused_parameters
        )
        self.find_unused_parameters = find_unused_parameters

    def distributed(
        self, model: nn.Module, optimizer: Any = None, lr_scheduler: Any = None,
        find_unused_parameters: bool | None = None, **kwargs: Any
    ) -> tuple[Any, Any, Any]:
        """Move the model to :meth:`device` and wrap it in DistributedDataParallel.

        ``find_unused_parameters`` (default: the constructor's) and ``kwargs`` go to
        DistributedDataParallel.
        """
        self._require_init()
        if isinstance(model, DistributedDataParallel):
            return model, optimizer, lr_scheduler
        device = self.device()
        model = model.to(device)
        wrapped = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=(self.find_unused_parameters if find_unused_parameters is None
                                    else find_unused_parameters),
            **kwargs,
        )
        return wrapped, optimizer, lr_scheduler

    def unwrap(self, model: nn.Module) -> nn.Module:
        """The module inside DistributedDataParallel."""
        return model.module if isinstance(model, DistributedDataParallel) else model


def launched_with_several_processes(environ: dict[str, str] | None = None) -> bool:
    """Whether a launcher started this process as one of several: torchrun (``WORLD_SIZE``)
    or an srun step (``SLURM_STEP_NUM_TASKS``). A batch script's own process is not one,
    although ``SLURM_NTASKS`` is set there too (checked on a real SLURM)."""
    env = os.environ if environ is None else environ
    for key in ("WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        try:
            if int(env.get(key, "1")) > 1:
                return True
        except ValueError:
            return True  # malformed: let the strategy report it
    return False


__all__ = ["LaunchEnv", "TorchDDPStrategy", "launched_with_several_processes", "read_launch_env"]
