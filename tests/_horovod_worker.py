"""Run under horovodrun by tests/e2e/test_horovod_e2e.py: the horovod strategy on gloo/CPU.

Usage: horovodrun --gloo -np 2 -H localhost:2 python tests/_horovod_worker.py OUTDIR
Each rank trains the digits MLP for 3 epochs, runs every collective once, and writes
OUTDIR/rank<R>.json with what it saw; the test asserts on those files.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
from hpo_trainers import SeenDigitsTrainer

from itwinai_ray.components import DataSplitter
from itwinai_ray.examples.digits import DigitsGetter


class LocalLossTrainer(SeenDigitsTrainer):
    """Also records this rank's own (not averaged) validation loss of each epoch."""

    gathered: list[list[float]] = []

    def validation_epoch(self) -> Any:
        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for x, y in self.validation_dataloader:
                total += float(self.loss(self.model(x), y))
                count += 1
        loss = super().validation_epoch()
        self.epoch_metrics["local_val_loss"] = total / max(count, 1)
        self.gathered.append(self.strategy.allgather_obj(total / max(count, 1)))
        return loss


def strategy_rank_seed() -> int:
    """A different seed per rank, from the launcher's variables."""
    return int(os.environ.get("HOROVOD_RANK", os.environ.get("RANK", "0")))


def run(outdir: Path) -> dict[str, Any]:
    train, val, _ = DataSplitter(0.7, 0.15, 0.15, rnd_seed=0).execute(DigitsGetter().execute())
    trainer = LocalLossTrainer(
        epochs=3, strategy={"name": "horovod", "scale_lr": True}, random_seed=0,
        config={"batch_size": 32, "optim_lr": 0.005, "hidden_size": 32},
        checkpoints_location=outdir / "ckpt")
    strategy = trainer.strategy
    # Different initial weights per rank: the broadcast must make them equal.
    trainer.random_seed = None
    torch.manual_seed(strategy_rank_seed())
    trainer.execute(train, val)
    model = strategy.unwrap(trainer.model)
    strategy.init()  # a fresh init, for the collectives below
    rank = strategy.global_rank()
    obs: dict[str, Any] = {
        "rank": rank, "size": strategy.global_world_size(),
        "local_size": strategy.local_world_size(), "is_main": strategy.is_main_worker,
        "history": trainer.history, "gathered_local_val_loss": trainer.gathered,
        "weights_sum": float(sum(p.detach().double().sum() for p in model.parameters())),
        "allgather_obj": strategy.allgather_obj({"rank": rank}),
        "gather_obj": strategy.gather_obj(f"r{rank}"),
        "gather_obj_dst1": strategy.gather_obj(rank * 10, dst_rank=1),
        "allgather": [t.tolist() for t in strategy.allgather(torch.tensor([rank, rank * 10.0]))],
        "reduce_mean": strategy.reduce_mean(1.0 if rank == 0 else 3.0),
        "checkpoint_written": (outdir / "ckpt" / "best" / "model.pt").is_file(),
    }
    loader = strategy.create_dataloader(torch.utils.data.TensorDataset(torch.arange(10)),
                                        batch_size=2, shuffle=True, seed=0)
    obs["shard"] = [int(i) for (batch,) in loader for i in batch]
    strategy.barrier()
    strategy.clean_up()
    return obs


def main() -> None:
    outdir = Path(sys.argv[1])
    out = outdir / f"rank{os.environ.get('HOROVOD_RANK', os.environ.get('RANK', 'x'))}.json"
    try:
        obs = run(outdir)
    except Exception:
        out.write_text(json.dumps({"error": traceback.format_exc()}))
        raise
    out.write_text(json.dumps(obs))


if __name__ == "__main__":
    main()
