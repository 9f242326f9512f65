"""Trainers for the reliability tests: they record what they train and inject real faults.

``RecordingTrainer`` appends one line ``<trial_id> <epoch> <pid> <rank>`` to the file named by
its config key ``record_file`` after each trained epoch, so a test can tell which epochs each
trial trained in which process, across crashes and restarts. Faults come from config keys
(so they can be search-space values):

- ``fault: raise``: raises a RuntimeError in epoch 1;
- ``die_at_epoch: k`` with ``die_rank: r``: that rank calls ``os._exit(1)`` early in epoch k
  (after ``die_delay_s``, default 2 s), once (``die_marker`` records that it happened);
- ``sleep_s``: seconds to sleep per epoch (to give a test time to act).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from itwinai_ray.examples.digits import DigitsTrainer


def read_records(path: str | Path) -> list[tuple[str, int, int, int]]:
    """(trial_id, epoch, pid, rank) per trained epoch, in file order."""
    if not Path(path).exists():
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        trial, epoch, pid, rank = line.split()
        out.append((trial, int(epoch), int(pid), int(rank)))
    return out


class RecordingTrainer(DigitsTrainer):
    """DigitsTrainer that records every trained epoch and injects the configured fault."""

    def _trial_id(self) -> str:
        ctx = getattr(getattr(self, "reporter", None), "ctx", None)
        return ctx.trial_id if ctx is not None else "plain"

    def train_epoch(self) -> Any:
        epoch = self.current_epoch
        cfg = self.config
        rank = self.strategy.global_rank()
        marker = cfg.get("die_marker")
        if (cfg.get("die_at_epoch") == epoch and cfg.get("die_rank", 0) == rank and marker
                and not os.path.exists(marker)):
            # mid-epoch: the previous epoch's report has been taken by Train's controller
            time.sleep(float(cfg.get("die_delay_s", 2.0)))
            Path(marker).write_text(f"{os.getpid()}\n")
            os._exit(1)  # a real process death: no exception, no cleanup
        if cfg.get("fault") == "raise" and epoch == 1:
            raise RuntimeError(f"injected failure in epoch {epoch}")
        loss = super().train_epoch()
        time.sleep(float(cfg.get("sleep_s", 0.0)))
        with open(cfg.get("record_file"), "a") as fh:  # O_APPEND: one whole line per write
            fh.write(f"{self._trial_id()} {epoch} {os.getpid()} {rank}\n")
        return loss
