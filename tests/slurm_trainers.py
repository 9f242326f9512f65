"""Trainer for the SLURM tests: each worker records where it ran, as it saw it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from itwinai_ray.examples.digits import DigitsTrainer


class NodeRecordingTrainer(DigitsTrainer):
    """DigitsTrainer whose workers each write ``<record_dir>/<trial>-rank<r>.json``.

    The record holds the worker's ranks from the trial's context (``node_rank`` is Ray Train's
    node index), the SLURM node whose slurmd started its Ray node (``SLURMD_NODENAME``, which
    Ray's processes inherit from ``srun``), and the IP of its Ray node.
    """

    def train_epoch(self) -> Any:
        import ray.util

        ctx = self.reporter.ctx
        record = {"trial_id": ctx.trial_id, "rank": ctx.rank, "world_size": ctx.world_size,
                  "node_rank": ctx.node_rank, "local_rank": ctx.local_rank,
                  "slurm_node": os.environ.get("SLURMD_NODENAME"),
                  "slurm_job": os.environ.get("SLURM_JOB_ID"),
                  "ray_node_ip": ray.util.get_node_ip_address(), "pid": os.getpid()}
        out = Path(self.config.record_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{ctx.trial_id}-rank{ctx.rank}.json").write_text(json.dumps(record))
        return super().train_epoch()
