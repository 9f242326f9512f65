"""Digits trainers for the PBT and multi-objective tests (imported by the Ray workers too).

``RecordingDigitsTrainer`` keeps its own record of what happened in its trial:

- every checkpoint it writes names the trial that wrote it (``owner.json``);
- every checkpoint it resumes from is appended to ``<record_dir>/resumes.jsonl`` (a config
  key; default: the trial dir): the trial
  that wrote it, its epoch, the lr saved in it, and the lr that this trial's config and its
  optimizer hold after the resume;
- its epoch metrics include ``seen_lr`` (the optimizer's lr) and ``model_size`` (parameters);
- ``epoch_sleep`` in its config slows each epoch, so that PBT's population runs side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from itwinai_ray.examples.digits import DigitsTrainer


class RecordingDigitsTrainer(DigitsTrainer):
    def _trial(self) -> tuple[str | None, str | None]:
        ctx = getattr(self.reporter, "ctx", None)
        return (getattr(ctx, "trial_id", None), getattr(ctx, "trial_dir", None))

    def train_epoch(self) -> Any:
        import time

        time.sleep(float(self.config.get("epoch_sleep", 0.0)))  # keep a population in step
        loss = super().train_epoch()
        self.epoch_metrics["seen_lr"] = float(self.optimizer.param_groups[0]["lr"])
        model = self.strategy.unwrap(self.model)
        self.epoch_metrics["model_size"] = float(sum(p.numel() for p in model.parameters()))
        return loss

    def write_checkpoint(self, directory: str | Path, epoch: int,
                         metrics: dict[str, float] | None = None) -> Path:
        path = super().write_checkpoint(directory, epoch, metrics)
        if self.strategy.is_main_worker:
            (Path(path) / "owner.json").write_text(json.dumps({"trial": self._trial()[0]}))
            if self.config.get("record_dir"):  # one checkpoint per report: what was reported
                with open(Path(self.config["record_dir"]) / "reports.jsonl", "a") as f:
                    f.write(json.dumps({"trial": self._trial()[0], "epoch": epoch}) + "\n")
        return path

    def load_checkpoint(self, directory: str | Path | None = None) -> dict[str, Any]:
        directory = directory or self.from_checkpoint
        state = super().load_checkpoint(directory)  # applies a changed lr (PBT)
        trial, trial_dir = self._trial()
        owner = Path(directory) / "owner.json"
        if trial_dir and owner.is_file() and self.strategy.is_main_worker:
            saved = yaml.safe_load((Path(directory) / "config.yaml").read_text())
            record = {"trial": trial, "from": json.loads(owner.read_text())["trial"],
                      "epoch": state.get("epoch"), "lr_in_checkpoint": saved["optim_lr"],
                      "config_lr": self.config.optim_lr,
                      "optimizer_lr": self.optimizer.param_groups[0]["lr"]}
            # record_dir: a folder the test reads (the trial dir is Ray's local artifact dir)
            record_dir = Path(self.config.get("record_dir") or trial_dir)
            with open(record_dir / "resumes.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        return state
