"""The strategy interface: a short list of verbs the trainer calls on ``self.strategy``.

Constructors only store settings; :meth:`Strategy.init` creates the process group and picks
the device; :meth:`Strategy.clean_up` releases what ``init`` created.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from itwinai_ray.errors import StrategyError


class Strategy(ABC):
    """Base class of every distributed strategy.

    Subclasses set ``name`` (the key used in YAML, e.g. ``strategy: ddp``) and implement the
    abstract methods. ``__init__`` must stay free of side effects so that strategies can be
    built, validated and pickled without a cluster.
    """

    name: ClassVar[str]
    #: itwinai's flag: False only for the single-process strategy.
    is_distributed: ClassVar[bool] = True

    def __init__(self, **kwargs: Any) -> None:
        self.settings: dict[str, Any] = dict(kwargs)
        self._initialized = False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({args})"

    # ---- lifecycle ---------------------------------------------------------------------
    @abstractmethod
    def init(self) -> None:
        """Set up the process group and device. Calling it twice is a no-op."""

    @property
    def is_initialized(self) -> bool:
        """Whether :meth:`init` has run (and :meth:`clean_up` has not)."""
        return self._initialized

    @abstractmethod
    def clean_up(self) -> None:
        """Release what :meth:`init` created (never a process group created by others)."""

    @abstractmethod
    def distributed(
        self, model: nn.Module, optimizer: Any = None, lr_scheduler: Any = None, **kwargs: Any
    ) -> tuple[Any, Any, Any]:
        """Move/wrap model, optimizer and scheduler for this strategy.

        ``kwargs`` are the strategy's own options, as in itwinai (DDP:
        ``find_unused_parameters``; DeepSpeed: ``config_params``, ``model_parameters``;
        Horovod: ``compression``, ``op``, ``gradient_predivide_factor``).
        """

    def is_distributed_model(self, model: Any, optimizer: Any = None) -> bool:
        """Whether :meth:`distributed` has already wrapped ``model`` (a hook may call it)."""
        return self.unwrap(model) is not model

    def default_distributed_kwargs(self, config: Any) -> dict[str, Any]:
        """What ``TorchTrainer.get_default_distributed_kwargs`` passes to :meth:`distributed`."""
        return {}

    def unwrap(self, model: nn.Module) -> nn.Module:
        """Return the bare module (e.g. to save its ``state_dict``)."""
        return model

    def zero_grad(self, optimizer: Any) -> None:
        """Clear gradients (call it instead of ``optimizer.zero_grad()`` in a train step)."""
        optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor, model: Any) -> None:
        """Back-propagate ``loss`` (call it instead of ``loss.backward()`` in a train step)."""
        loss.backward()

    def optimizer_step(self, model: Any, optimizer: Any) -> None:
        """Apply the gradients (call it instead of ``optimizer.step()`` in a train step)."""
        optimizer.step()

    # ---- topology ----------------------------------------------------------------------
    @abstractmethod
    def global_rank(self) -> int:
        """Rank of this process among all processes."""

    @abstractmethod
    def local_rank(self) -> int:
        """Rank of this process on its node."""

    @abstractmethod
    def global_world_size(self) -> int:
        """Number of processes in total."""

    @abstractmethod
    def local_world_size(self) -> int:
        """Number of processes on this node."""

    @property
    def is_main_worker(self) -> bool:
        """True on global rank 0 (a property, as in itwinai: ``if strategy.is_main_worker:``)."""
        return self.global_rank() == 0

    def device(self) -> torch.device:
        """``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            return torch.device("cuda", self.local_rank() % max(count, 1))
        return torch.device("cpu")

    def set_device(self) -> None:
        """Make this rank's GPU the current CUDA device (nothing without CUDA), as itwinai."""
        if torch.cuda.is_available():
            torch.cuda.set_device(self.device())

    # ---- collectives -------------------------------------------------------------------
    @abstractmethod
    def barrier(self) -> None:
        """Wait until every rank reaches this point."""

    @abstractmethod
    def allgather_obj(self, obj: Any) -> list[Any]:
        """Picklable objects of all ranks, ordered by rank, on every rank."""

    @abstractmethod
    def allgather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Same-shaped tensors of all ranks on every rank."""

    def gather_obj(self, obj: Any, dst_rank: int = 0, **deprecated: Any) -> list[Any] | None:
        """Picklable objects of all ranks, ordered by rank, on ``dst_rank``; None elsewhere."""
        dst_rank = self._dst_rank(dst_rank, deprecated)
        gathered = self.allgather_obj(obj)
        return gathered if self.global_rank() == dst_rank else None

    def gather(self, tensor: torch.Tensor, dst_rank: int = 0,
               **deprecated: Any) -> list[torch.Tensor] | None:
        """Same-shaped tensors of all ranks on ``dst_rank``; None elsewhere.

        Built on allgather, which every backend supports for every device.
        """
        dst_rank = self._dst_rank(dst_rank, deprecated)
        gathered = self.allgather(tensor)
        return gathered if self.global_rank() == dst_rank else None

    def broadcast_obj(self, obj: Any, src_rank: int = 0) -> Any:
        """``src_rank``'s picklable object, on every rank."""
        self._check_dst(src_rank)
        return self.allgather_obj(obj)[src_rank]

    def reduce_mean(self, value: float) -> float:
        """Mean of ``value`` over ranks; every rank receives it."""
        values = self.allgather(torch.tensor([float(value)], dtype=torch.float64))
        return float(torch.cat(values).sum().item()) / self.global_world_size()

    # ---- checkpoints -------------------------------------------------------------------
    #: True when every rank writes its own part of a checkpoint (DeepSpeed ZeRO): each rank
    #: then needs a directory to write into, and the parts together make the checkpoint.
    checkpoint_on_all_ranks: ClassVar[bool] = False

    def save_checkpoint(self, directory: str | os.PathLike, model: nn.Module,
                        optimizer: Any = None, lr_scheduler: Any = None,
                        state: dict[str, Any] | None = None,
                        config: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint directory from the main worker; every rank waits for it."""
        from itwinai_ray.trainer import checkpoint

        path = Path(directory)
        if self.is_main_worker:
            checkpoint.save_checkpoint(path, self.unwrap(model), optimizer, lr_scheduler,
                                       state=state, config=config)
        self.barrier()
        return path

    def load_checkpoint(self, directory: str | os.PathLike, model: nn.Module,
                        optimizer: Any = None, lr_scheduler: Any = None) -> dict[str, Any]:
        """Load a checkpoint directory on every rank; return the trainer state."""
        from itwinai_ray.trainer import checkpoint

        return checkpoint.load_checkpoint(directory, self.unwrap(model), optimizer,
                                          lr_scheduler, map_location=self.device())

    # ---- data --------------------------------------------------------------------------
    def create_dataloader(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        sampler: Sampler | None = None,
        drop_last: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> DataLoader:
        """A DataLoader that gives each rank a disjoint shard when the world size is > 1.

        With more than one rank and no ``sampler``, a :class:`DistributedSampler` shards
        (and, with ``shuffle``, shuffles with ``seed``) the data; call :meth:`set_epoch`
        every epoch to reshuffle.
        """
        world_size = self.global_world_size()
        if world_size > 1 and sampler is None and kwargs.get("batch_sampler") is None:
            sampler = DistributedSampler(
                dataset,
                num_replicas=world_size,
                rank=self.global_rank(),
                shuffle=shuffle,
                seed=seed,
                drop_last=drop_last,
            )
            shuffle = False
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=num_workers,
            pin_memory=pin_memory,
            collate_fn=collate_fn,
            generator=generator,
            **kwargs,
        )

    def set_epoch(self, dataloader: DataLoader, epoch: int) -> None:
        """Tell the dataloader's sampler the epoch (reshuffles a DistributedSampler)."""
        sampler = getattr(dataloader, "sampler", None)
        set_epoch = getattr(sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)

    # ---- helpers for subclasses --------------------------------------------------------
    def _dst_rank(self, dst_rank: int, deprecated: dict[str, Any]) -> int:
        if "dst" in deprecated:  # this project's spelling before itwinai's dst_rank
            warnings.warn("gather(..., dst=N) is deprecated: use dst_rank=N (itwinai's name)",
                          DeprecationWarning, stacklevel=3)
            dst_rank = deprecated.pop("dst")
        if deprecated:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(deprecated)}")
        self._check_dst(dst_rank)
        return dst_rank

    def _check_dst(self, dst: int) -> None:
        world = self.global_world_size()
        if not 0 <= dst < world:
            raise StrategyError(
                f"rank {dst} does not exist (gather dst_rank / broadcast src_rank): world "
                f"size is {world}"
            )

    def _require_init(self) -> None:
        if not self._initialized:
            raise StrategyError(
                f"Strategy '{self.name}' is not initialized: call strategy.init() first."
            )

