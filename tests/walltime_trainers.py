"""Trainer for the SLURM time-limit test: slow epochs, each one's start recorded."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from itwinai_ray.examples.digits import DigitsTrainer


class SlowEpochRecordingTrainer(DigitsTrainer):
    """DigitsTrainer whose epochs take ``epoch_sleep_s`` more, each one's start recorded.

    Each worker appends one JSON line per epoch it starts to ``<record_dir>/<trial>.jsonl``
    (shared storage): the epoch (1-based), the epoch its run started from (``start_epoch``:
    after a restore, the checkpoint's epoch + 1), the SLURM allocation (``SLURM_RESTART_COUNT``,
    0 for the first one) and the worker's pid (one pid per run of the trial).
    """

    def train_epoch(self) -> Any:
        ctx = self.reporter.ctx
        record = {"trial_id": ctx.trial_id, "rank": ctx.rank, "epoch": self.current_epoch + 1,
                  "start_epoch": self.start_epoch + 1,
                  "restart": int(os.environ.get("SLURM_RESTART_COUNT") or 0),
                  "slurm_job": os.environ.get("SLURM_JOB_ID"), "pid": os.getpid(),
                  "time": time.time()}
        out = Path(self.config.record_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / f"{ctx.trial_id}.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        time.sleep(float(self.config.get("epoch_sleep_s", 0)))
        return super().train_epoch()
