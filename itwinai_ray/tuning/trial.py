"""What runs in each worker of each trial: the trainer's own lifecycle, with the trial's values.

:func:`run_trainer_in_worker` is the ``worker_fn`` given to the Ray backend. It copies the
trainer, merges the trial's sampled hyperparameters into it, picks the strategy from the
worker count, attaches a :class:`TrialReporter` and runs the unchanged lifecycle. Nothing
here imports Ray: the backend's :class:`~itwinai_ray.tuning.context.WorkerContext` is
the only channel to the tuner.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..config.training import TrainingConfiguration
from ..distributed import as_ray_strategy, get_strategy
from ..errors import ConfigurationError
from ..trainer.torch_trainer import TorchTrainer

log = logging.getLogger(__name__)

CHECKPOINT_DIRNAME = "checkpoint"


def config_keys(trainer: TorchTrainer) -> set[str]:
    """Keys a trainer reads from its config: declared fields and the extras it was given."""
    return trainer.config.known_keys()


def attribute_keys(trainer: TorchTrainer) -> set[str]:
    """Constructor arguments that the trainer stores under the same name (e.g. ``epochs``),
    with a plain value, except its plumbing (``not_tunable_args``)."""
    import inspect

    names: set[str] = set()
    for cls in type(trainer).__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or cls is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
    return {n for n in names if n not in trainer.not_tunable_args and hasattr(trainer, n)
            and isinstance(getattr(trainer, n), (int, float, str, bool, type(None)))}


def apply_trial_values(trainer: TorchTrainer, values: Mapping[str, Any]) -> None:
    """Merge sampled values: config keys into the config, constructor attributes onto the
    trainer, and any other key into the config as a new key (as itwinai does)."""
    as_attr = attribute_keys(trainer) - config_keys(trainer)
    config_update = {k: v for k, v in values.items() if k not in as_attr}
    if config_update:
        merged = {**trainer.config.model_dump(), **config_update}
        trainer.config = type(trainer.config)(**merged)
    for key, value in values.items():
        if key in as_attr:
            setattr(trainer, key, value)


class TrialReporter:
    """Reports each epoch (metrics averaged over ranks, plus a checkpoint) to the tuner."""

    def __init__(self, ctx: Any, checkpoint_frequency: int = 1) -> None:
        self.ctx = ctx
        self.checkpoint_frequency = checkpoint_frequency
        self.user_reports = False
        self._named = False

    def _payload(self, metrics: Mapping[str, Any], epoch: int | None) -> dict[str, Any]:
        out = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool))}
        if epoch is not None:  # the framework's own report: itwinai's naming rule
            self._name_the_loss(out)
        missing = [m for m in getattr(self.ctx, "required_metrics", ()) if m not in out]
        if missing:
            raise ConfigurationError(
                f"The trainer reported {sorted(out) or 'no numeric metrics'}, but not the tuned "
                f"metric {', '.join(repr(m) for m in missing)}. Set tune_config.metric to one "
                f"of the reported keys, or make the trainer report it (val_* metrics need a "
                f"validation dataset).")
        if epoch is not None:
            out["epoch"] = epoch + 1
        out["world_size"] = self.ctx.world_size
        return out

    def _name_the_loss(self, out: dict[str, Any]) -> None:
        """itwinai reports the epoch's loss under the tuned metric's name; so do we, for a
        tuned metric that is not among the epoch's metrics and names a loss (a typo of another
        metric, say ``val_acc``, still fails with the list of what was reported)."""
        for name in getattr(self.ctx, "required_metrics", ()):
            if name not in out and "loss" in name and "loss" in out:
                out[name] = out["loss"]
                if not self._named and self.ctx.is_main:
                    log.info("The tuned metric %r is the epoch's loss (%s), as in itwinai.",
                             name, "validation loss" if "val_loss" in out else "training loss")
                self._named = True

    def on_epoch_end(self, trainer: TorchTrainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.user_reports:  # the trainer reports itself (ray_report): never twice
            return
        last = epoch + 1 == trainer.epochs
        if (epoch + 1) % self.checkpoint_frequency and not last:
            self.ctx.report(self._payload(metrics, epoch), None)
            return
        # Rank 0 writes the checkpoint; a sharded one (DeepSpeed) has every rank write its part
        # into its own directory, and the tuner merges the parts into one checkpoint.
        writes = self.ctx.is_main or trainer.strategy.checkpoint_on_all_ranks
        tmp = Path(tempfile.mkdtemp(prefix="itwinai-ray-ckpt-")) if writes else None
        try:
            target = (tmp / CHECKPOINT_DIRNAME) if tmp else Path(CHECKPOINT_DIRNAME)
            trainer.write_checkpoint(target, epoch, metrics)  # rank 0 writes, all wait
            self.ctx.report(self._payload(metrics, epoch), str(target) if tmp else None)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)  # the backend has copied it

    def report(self, trainer: TorchTrainer, metrics: dict[str, float],
               checkpoint_dir: str | Path | None, checkpoint_data: dict[str, Any] | None) -> None:
        self.user_reports = True
        # What Tune sees is the mean over ranks, as for the framework's own reports, for the
        # numbers every rank reports (ranks may report different keys: the others are rank
        # 0's, as Ray takes them).
        numeric = sorted(k for k, v in metrics.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool))
        common = set.intersection(*map(set, trainer.strategy.allgather_obj(numeric)))
        metrics = {k: trainer.strategy.reduce_mean(float(v)) if k in common else v
                   for k, v in sorted(metrics.items())}
        tmp = None
        try:
            if checkpoint_data is not None and checkpoint_dir is None and self.ctx.is_main:
                tmp = Path(tempfile.mkdtemp(prefix="itwinai-ray-ckpt-"))
                torch.save(checkpoint_data, tmp / "checkpoint.pt")
                checkpoint_dir = tmp
            self.ctx.report(self._payload(metrics, None),
                            str(checkpoint_dir) if checkpoint_dir is not None else None)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def attach_to_trial(trainer: TorchTrainer, ctx: Any, checkpoint_frequency: int = 1) -> None:
    """Make ``trainer`` one worker of a tuning trial (in place).

    The strategy follows the trial (DDP over the trial's process group when it has several
    workers, none otherwise); checkpoints go to the tuner through a :class:`TrialReporter`,
    not to a local directory; a trial resumed by the tuner (retry, restore, PBT) starts from
    its checkpoint.
    """
    if ctx.world_size > 1:
        if trainer.strategy.name == "none":
            trainer.strategy = get_strategy("ddp")  # adopts Ray Train's process group
        trainer.strategy = as_ray_strategy(trainer.strategy)  # RayDDPStrategy, ...
    elif trainer.strategy.name != "none":
        trainer.strategy = get_strategy("none")
    trainer.framework_checkpoints = False  # each reported epoch is checkpointed instead
    # save_checkpoint(name) of user code: a directory of this worker's own (trials share nodes)
    trainer.checkpoints_location = Path(tempfile.mkdtemp(prefix="itwinai-ray-trainer-"))
    resume = ctx.resume_checkpoint_dir
    # Trainers that checkpoint themselves (ray_report(checkpoint_dir=...)) read this one.
    trainer.ray_checkpoint_dir = resume
    if resume and (Path(resume) / "model.pt").is_file():
        trainer.from_checkpoint = Path(resume)
    trainer.reporter = TrialReporter(ctx, checkpoint_frequency)


def run_trainer_in_worker(config: dict[str, Any], ctx: Any, *, trainer: TorchTrainer,
                          datasets: Iterable[Any], checkpoint_frequency: int = 1) -> None:
    """``worker_fn`` for the Ray backend: one worker of one trial."""
    worker_trainer = copy.deepcopy(trainer)
    apply_trial_values(worker_trainer, config)
    attach_to_trial(worker_trainer, ctx, checkpoint_frequency)
    if isinstance(worker_trainer.config, TrainingConfiguration) and ctx.is_main:
        log.info("Trial %s: %s", ctx.trial_id, dict(config))
    try:
        worker_trainer.run_lifecycle(*datasets)
    finally:  # what save_checkpoint(name) wrote has been reported (copied) or is not needed
        shutil.rmtree(worker_trainer.checkpoints_location, ignore_errors=True)
