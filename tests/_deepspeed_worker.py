"""Run under torchrun by tests/e2e/test_deepspeed_e2e.py: DeepSpeed ZeRO on gloo/CPU, digits MLP.

Usage: torchrun --nproc_per_node=2 tests/_deepspeed_worker.py OUTDIR STAGE [resume]
Each rank trains 2 epochs (a checkpoint per epoch); with ``resume``, new processes resume from
the epoch-2 checkpoint for a third epoch (one trainer per process, as under a launcher). Each
rank writes OUTDIR/rank<R>.json (or resumed_rank<R>.json) with what it saw.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hpo_trainers import SeenDigitsTrainer

from itwinai_ray.components import DataSplitter
from itwinai_ray.examples.digits import DigitsGetter


def ds_config(stage: int) -> dict[str, Any]:
    return {"zero_optimization": {"stage": stage},
            "optimizer": {"type": "Adam", "params": {"torch_adam": True}}}


class EngineTrainer(SeenDigitsTrainer):
    """Records what the DeepSpeed engine was built with."""

    def train_epoch(self) -> Any:
        loss = super().train_epoch()
        metrics = self.epoch_metrics
        metrics["seen_micro_batch"] = float(self.model.train_micro_batch_size_per_gpu())
        metrics["seen_zero_stage"] = float(self.model.zero_optimization_stage())
        metrics["seen_rank"] = float(self.strategy.global_rank())
        return loss


def run(outdir: Path, stage: int, resume: bool) -> dict[str, Any]:
    train, val, _ = DataSplitter(0.7, 0.15, 0.15, rnd_seed=0).execute(DigitsGetter().execute())
    common = {"strategy": {"name": "deepspeed", "config": ds_config(stage), "backend": "gloo"},
              "config": {"batch_size": 32, "optim_lr": 0.01, "hidden_size": 32},
              "random_seed": 0, "checkpoints_location": outdir / "ckpt", "checkpoint_every": 1}
    if resume:
        trainer = EngineTrainer(epochs=3, from_checkpoint=outdir / "ckpt" / "epoch_2",
                                **common)
    else:
        trainer = EngineTrainer(epochs=2, **common)
    trainer.execute(train, val)
    return {"history": trainer.history, "start_epoch": trainer.start_epoch,
            "optimizer": type(trainer.optimizer).__name__}


def main() -> None:
    outdir, stage = Path(sys.argv[1]), int(sys.argv[2])
    resume = sys.argv[3:] == ["resume"]
    out = outdir / f"{'resumed_' if resume else ''}rank{os.environ['RANK']}.json"
    try:
        obs = run(outdir, stage, resume)
    except Exception:
        out.write_text(json.dumps({"error": traceback.format_exc()}))
        raise
    out.write_text(json.dumps(obs))


if __name__ == "__main__":
    main()
