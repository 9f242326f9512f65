"""WorkerContext: what one worker of one trial knows about its run (hides Ray from trainers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorkerContext:
    """What one worker of one trial knows about its run. Hides Ray from trainer code.

    Attributes:
        world_size: number of workers of this trial (1 on the fast path).
        rank: global rank of this worker.
        local_rank: rank on this node (use it to pick the GPU).
        local_world_size: workers of this trial on this node.
        node_rank: index of this worker's node.
        trial_id: Tune trial id.
        trial_dir: the trial's directory (results, logs).
        resume_checkpoint_dir: checkpoint to resume from (after a retry, a restore or a PBT
            exploit), or ``None`` for a fresh start.
        required_metrics: the metrics the tuner ranks trials by; a report without them fails
            the trial with a message naming them (instead of a silent success).
    """

    world_size: int
    rank: int
    local_rank: int
    local_world_size: int
    node_rank: int
    trial_id: str
    trial_dir: str
    resume_checkpoint_dir: str | None
    _report_fn: Callable[[dict[str, Any], str | None], None] = field(repr=False, compare=False)
    required_metrics: tuple[str, ...] = ()

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: str | None = None) -> None:
        """Report one epoch's metrics (and optionally a checkpoint directory) to the tuner.

        Call it on every rank, the same number of times: it is a barrier. Rank 0's metrics are
        what the tuner sees, so gather them first. Checkpoint directories given by several ranks
        are merged into one checkpoint. The directory is copied: it may be deleted afterwards.
        """
        self._report_fn(dict(metrics), checkpoint_dir)


WorkerFn = Callable[[dict[str, Any], WorkerContext], None]
