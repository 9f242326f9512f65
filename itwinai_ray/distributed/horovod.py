"""Horovod strategy (``strategy: horovod``): allreduce data parallelism on gloo (or NCCL/MPI).

Launchers:

- ``horovodrun --gloo -np N ...`` (or any launcher that sets the ``HOROVOD_*`` variables):
  ``hvd.init()`` reads them;
- ``srun``/``torchrun``/Ray Train V2 workers: the strategy first creates (or adopts) a
  torch.distributed group, exactly as ``ddp`` does, and starts Horovod's gloo rendezvous over it
  (:mod:`itwinai_ray.distributed._horovod_rendezvous`): one rendezvous per worker group, so one
  per HPO trial.

Horovod 0.28.1 does not build against torch >= 2.1 as published: install it with
``scripts/install_horovod.sh``. ``import horovod.torch`` happens in :meth:`HorovodStrategy.init`.
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import torch
from torch import nn

from itwinai_ray.distributed._horovod_rendezvous import (
    Rendezvous,
    launched_by_horovod,
    start_rendezvous,
)
from itwinai_ray.distributed.base import Strategy
from itwinai_ray.distributed.torch_dist import TorchDistributedStrategy
from itwinai_ray.errors import StrategyError

_OPS = ("average", "sum", "adasum")
INSTALL_HINT = (
    "Horovod 0.28.1 does not build against torch >= 2.1 as published: run "
    "scripts/install_horovod.sh (it builds horovod with gloo into the active environment)"
)


def horovod_available() -> bool:
    """Whether horovod is installed (without importing it)."""
    return importlib.util.find_spec("horovod") is not None


def import_horovod() -> Any:
    """``horovod.torch``, or a MissingDependencyError that names the install script."""
    if not horovod_available():
        raise StrategyError(
            f"strategy 'horovod' needs the horovod package, which is not installed. "
            f"{INSTALL_HINT}"
        )
    try:
        import horovod.torch as hvd
    except ImportError as err:  # installed, but built against another torch
        raise StrategyError(
            f"horovod is installed but horovod.torch does not import ({err}). {INSTALL_HINT}"
        ) from err
    return hvd


class HorovodStrategy(Strategy):
    """``strategy: horovod``: ``hvd.DistributedOptimizer`` with broadcast initial state.

    Args:
        scale_lr: multiply the optimizer's learning rate by the number of processes (the
            usual Horovod recipe for a global batch that grows with the world size).
        fp16_allreduce: compress gradients to fp16 for the allreduce.
        op: reduction of gradients: "average", "sum" or "adasum".
        backward_passes_per_step: local gradient accumulation steps per allreduce.
        gradient_predivide_factor: divide gradients by this before the sum, the rest after.
        timeout_s: timeout of the torch.distributed group used to start the rendezvous
            outside horovodrun.
    """

    name: ClassVar[str] = "horovod"

    def __init__(self, scale_lr: bool = False, fp16_allreduce: bool = False,
                 op: str = "average", backward_passes_per_step: int = 1,
                 gradient_predivide_factor: float = 1.0, timeout_s: float = 1800) -> None:
        if op not in _OPS:
            raise StrategyError(
                f"Unknown op {op!r} for strategy 'horovod'. Available: {', '.join(_OPS)}")
        if backward_passes_per_step < 1:
            raise StrategyError(
                f"The value of `backward_passes_per_step` is {backward_passes_per_step}, but "
                "must be >= 1")
        if gradient_predivide_factor != 1.0 and op != "average":
            raise StrategyError("gradient_predivide_factor needs op: average")
        super().__init__(scale_lr=scale_lr, fp16_allreduce=fp16_allreduce, op=op,
                         backward_passes_per_step=backward_passes_per_step,
                         gradient_predivide_factor=gradient_predivide_factor,
                         timeout_s=timeout_s)
        self.scale_lr = scale_lr
        self.fp16_allreduce = fp16_allreduce
        self.op = op
        self.backward_passes_per_step = backward_passes_per_step
        self.gradient_predivide_factor = gradient_predivide_factor
        self.timeout_s = timeout_s
        self._hvd: Any = None
        self._group: TorchDistributedStrategy | None = None
        self._rendezvous: Rendezvous | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    def init(self) -> None:
        """``hvd.init()``; outside horovodrun, first a rendezvous over a torch group."""
        if self._initialized:
            return
        hvd = import_horovod()
        if not hvd.gloo_built() and not hvd.mpi_built():
            raise StrategyError(f"horovod was built without gloo and MPI. {INSTALL_HINT}")
        if not launched_by_horovod():
            self._group = _RendezvousGroup(backend="gloo", timeout_s=self.timeout_s)
            self._group.init()  # adopts Ray Train's / torchrun's group, or creates one
            self._rendezvous = start_rendezvous()
        hvd.init()
        self._hvd = hvd
        if torch.cuda.is_available():
            torch.cuda.set_device(self.device())
        self._initialized = True

    def clean_up(self) -> None:
        """``hvd.shutdown()``, then stop the rendezvous and the group this strategy created."""
        try:
            if self._hvd is not None and self._initialized:
                self._hvd.shutdown()
        finally:
            self._hvd = None
            if self._rendezvous is not None:
                self._rendezvous.stop()
                self._rendezvous = None
            if self._group is not None:
                self._group.clean_up()
                self._group = None
            self._initialized = False

    def _h(self) -> Any:
        self._require_init()
        return self._hvd

    # ---- model ---------------------------------------------------------------------------
    def distributed(
        self, model: nn.Module, optimizer: Any = None, lr_scheduler: Any = None,
        compression: Any = None, op: Any = None, gradient_predivide_factor: float | None = None,
        **kwargs: Any,
    ) -> tuple[Any, Any, Any]:
        """Broadcast rank 0's parameters and optimizer state; wrap the optimizer.

        With ``scale_lr`` the learning rates (and a scheduler's base rates) are multiplied by
        the number of processes first. ``compression``, ``op`` (Horovod objects, as itwinai
        passes them) and ``gradient_predivide_factor`` override the constructor's settings.
        """
        hvd = self._h()
        model = model.to(self.device())
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        if optimizer is None:
            return model, optimizer, lr_scheduler
        if self.scale_lr:
            self._scale_lr(optimizer, lr_scheduler, hvd.size())
        hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        ops = {"average": hvd.Average, "sum": hvd.Sum, "adasum": hvd.Adasum}
        if compression is None:
            compression = hvd.Compression.fp16 if self.fp16_allreduce else hvd.Compression.none
        if gradient_predivide_factor is None:
            gradient_predivide_factor = self.gradient_predivide_factor
        wrapped = hvd.DistributedOptimizer(
            optimizer, named_parameters=model.named_parameters(), compression=compression,
            backward_passes_per_step=self.backward_passes_per_step,
            op=ops[self.op] if op is None else op,
            gradient_predivide_factor=gradient_predivide_factor, **kwargs)
        return model, wrapped, lr_scheduler

    def is_distributed_model(self, model: Any, optimizer: Any = None) -> bool:
        """Horovod wraps the optimizer, not the model."""
        return hasattr(optimizer, "synchronize")

    def default_distributed_kwargs(self, config: Any) -> dict[str, Any]:
        """itwinai's config fields ``fp16_allreduce``, ``use_adasum`` and
        ``gradient_predivide_factor``, where set, over the strategy's own settings."""
        hvd = self._h()
        out: dict[str, Any] = {}
        if config.fp16_allreduce:
            out["compression"] = hvd.Compression.fp16
        if config.use_adasum:
            out["op"] = hvd.Adasum
        if config.gradient_predivide_factor != 1.0:
            out["gradient_predivide_factor"] = config.gradient_predivide_factor
        return out

    def zero_grad(self, optimizer: Any) -> None:
        """Horovod's DistributedOptimizer.zero_grad() takes no ``set_to_none``."""
        optimizer.zero_grad()

    @staticmethod
    def _scale_lr(optimizer: Any, lr_scheduler: Any, factor: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
        if lr_scheduler is not None and hasattr(lr_scheduler, "base_lrs"):
            lr_scheduler.base_lrs = [lr * factor for lr in lr_scheduler.base_lrs]

    # ---- topology ------------------------------------------------------------------------
    def global_rank(self) -> int:
        """``hvd.rank()``."""
        return int(self._h().rank())

    def local_rank(self) -> int:
        """``hvd.local_rank()``."""
        return int(self._h().local_rank())

    def global_world_size(self) -> int:
        """``hvd.size()``."""
        return int(self._h().size())

    def local_world_size(self) -> int:
        """``hvd.local_size()``."""
        return int(self._h().local_size())

    # ---- collectives -----------------------------------------------------------------------
    def barrier(self) -> None:
        """``hvd.barrier()``."""
        self._h().barrier()

    def allgather_obj(self, obj: Any) -> list[Any]:
        """``hvd.allgather_object``: objects of all ranks, on every rank."""
        return list(self._h().allgather_object(obj))

    def allgather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """``hvd.allgather`` of same-shaped tensors, split back into one per rank."""
        hvd = self._h()
        local = tensor.detach().contiguous().unsqueeze(0)
        if local.device.type == "cuda" and not hvd.nccl_built():
            local = local.cpu()
        return [t.squeeze(0).to(tensor.device) for t in hvd.allgather(local).split(1)]


class _RendezvousGroup(TorchDistributedStrategy):
    """The torch.distributed group over which a Horovod rendezvous is started."""

    name: ClassVar[str] = "horovod"

    def distributed(self, model: nn.Module, optimizer: Any = None, lr_scheduler: Any = None,
                    **kwargs: Any) -> tuple[Any, Any, Any]:  # pragma: no cover
        raise NotImplementedError
