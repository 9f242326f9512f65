"""The strategy interface: a short list of verbs the trainer calls on ``self.strategy``.

Constructors only store settings; :meth:`Strategy.init` creates the process group and picks
the device; :meth:`Strategy.clean_up` releases what ``init`` created.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
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
        self, model: nn.Module, optimizer: Any = None, lr_scheduler: Any = None
    ) -> tuple[Any, Any, Any]:
        """Move/wrap model, optimizer and scheduler for this strategy."""

    def unwrap(self, model: nn.Module) -> nn.Module:
        """Return the bare module (e.g. to save its ``state_dict``)."""
        return model

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

    def is_main_worker(self) -> bool:
        """True on global rank 0."""
        return self.global_rank() == 0

    def device(self) -> torch.device:
        """``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            return torch.device("cuda", self.local_rank() % max(count, 1))
        return torch.device("cpu")

    # ---- collectives -------------------------------------------------------------------
    @abstractmethod
    def barrier(self) -> None:
        """Wait until every rank reaches this point."""

    @abstractmethod
    def gather_obj(self, obj: Any, dst: int = 0) -> list[Any] | None:
        """Picklable objects of all ranks, ordered by rank, on ``dst``; None elsewhere."""

    @abstractmethod
    def allgather_obj(self, obj: Any) -> list[Any]:
        """Picklable objects of all ranks, ordered by rank, on every rank."""

    @abstractmethod
    def gather(self, tensor: torch.Tensor, dst: int = 0) -> list[torch.Tensor] | None:
        """Same-shaped tensors of all ranks on ``dst``; None elsewhere."""

    @abstractmethod
    def allgather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Same-shaped tensors of all ranks on every rank."""

    @abstractmethod
    def reduce_mean(self, value: float) -> float:
        """Mean of ``value`` over ranks; every rank receives it."""

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
        if world_size > 1 and sampler is None:
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
    def _require_init(self) -> None:
        if not self._initialized:
            raise StrategyError(
                f"Strategy '{self.name}' is not initialized: call strategy.init() first."
            )


class PlannedStrategy(Strategy):
    """A strategy that can be configured but not run yet in this release."""

    def init(self) -> None:
        """Always raises: the backend is planned, not implemented."""
        raise StrategyError(
            f"strategy '{self.name}' is not supported yet in this release (planned); "
            "use strategy: ddp or none"
        )

    def clean_up(self) -> None:
        """Nothing to release (``init`` never succeeds); safe to call in ``finally``."""
        self._initialized = False

    def _unsupported(self, *_: Any, **__: Any) -> Any:
        self.init()

    distributed = _unsupported  # type: ignore[assignment]
    global_rank = _unsupported  # type: ignore[assignment]
    local_rank = _unsupported  # type: ignore[assignment]
    global_world_size = _unsupported  # type: ignore[assignment]
    local_world_size = _unsupported  # type: ignore[assignment]
    barrier = _unsupported  # type: ignore[assignment]
    gather_obj = _unsupported  # type: ignore[assignment]
    allgather_obj = _unsupported  # type: ignore[assignment]
    gather = _unsupported  # type: ignore[assignment]
    allgather = _unsupported  # type: ignore[assignment]
    reduce_mean = _unsupported  # type: ignore[assignment]
