"""A DDP strategy that records, per rank, each local value and its mean over ranks.

Used by the torchrun test to check that the metrics the trainer reports are gathered over
both ranks (not rank 0's local value). The collective itself is the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

from itwinai_ray.distributed import TorchDDPStrategy


class RecordingDDP(TorchDDPStrategy):
    def __init__(self, outdir: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.outdir = outdir
        self.records: list[tuple[float, float]] = []

    def reduce_mean(self, value: float) -> float:
        reduced = super().reduce_mean(value)
        self.records.append((value, reduced))
        return reduced

    def clean_up(self) -> None:
        if self.is_initialized:
            out = Path(self.outdir) / f"rank{self.global_rank()}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"world_size": self.global_world_size(),
                                       "records": self.records}))
        super().clean_up()
