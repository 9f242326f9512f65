"""Run under torchrun by tests/e2e/test_itwinai_compat.py: the itwinai-style trainers, plainly.

Usage: torchrun --nproc_per_node=2 tests/_itwinai_style_worker.py OUTDIR loop|step|main|ds
The trainer is built as an itwinai YAML would build it (``strategy: ddp`` or ``deepspeed``,
no ``ray_*`` settings, so no Ray) and records under OUTDIR; rank R also writes
OUTDIR/<which>-rank<R>.json with its history or its error.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from itwinai_style_trainers import (
    DeepSpeedAwareTrainer,
    LoopTrainer,
    MainWorkerTrainer,
    StepTrainer,
)

from itwinai_ray.components import DataSplitter
from itwinai_ray.examples.digits import DigitsGetter, accuracy
from itwinai_ray.loggers import MLFlowLogger

DS = {"zero_optimization": {"stage": 1},
      "optimizer": {"type": "Adam", "params": {"torch_adam": True}}}


def run_one(which: str, outdir: Path) -> dict[str, Any]:
    """One trainer per torchrun job: a process group is created once per launch."""
    train, val, _ = DataSplitter(0.7, 0.15, 0.15, rnd_seed=0).execute(DigitsGetter().execute())
    common: dict[str, Any] = {"epochs": 2, "random_seed": 0, "strategy": "ddp",
                              "checkpoints_location": outdir / f"ckpt-{which}"}
    config = {"batch_size": 64, "optim_lr": 0.01, "record_dir": str(outdir)}
    if which == "loop":  # ray_report does nothing without Ray: one variant is enough
        trainer: Any = LoopTrainer(config={**config, "report_with": "file"},
                                   logger=MLFlowLogger(savedir=outdir / "mlflow",
                                                       experiment_name="loop"), **common)
    elif which == "step":
        trainer = StepTrainer(config=config, metrics={"accuracy": accuracy},
                              logger=MLFlowLogger(savedir=outdir / "mlflow",
                                                  experiment_name="steps", log_freq="batch"),
                              **common)
    elif which == "main":
        trainer = MainWorkerTrainer(config=config, **common)
    else:
        trainer = DeepSpeedAwareTrainer(config=config, **{
            **common, "strategy": {"name": "deepspeed", "config": DS}})
    trainer.execute(train, val)
    return {"history": trainer.history, "strategy": type(trainer.strategy).__name__}


def main() -> None:
    import torch.distributed as dist

    outdir, which = Path(sys.argv[1]), sys.argv[2]
    rank = int(os.environ["RANK"])
    try:
        result: dict[str, Any] = run_one(which, outdir)
    except Exception:  # noqa: BLE001 - reported to the test through the file
        result = {"error": traceback.format_exc()}
    result["rank"] = rank
    (outdir / f"{which}-rank{rank}.json").write_text(json.dumps(result, default=str))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
