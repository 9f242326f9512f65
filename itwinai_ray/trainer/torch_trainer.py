"""TorchTrainer: owns the training lifecycle; users override hooks only (itwinai 0.4's API).

Lifecycle of :meth:`TorchTrainer.execute` (the same under RayTorchTrainer, in every worker):

1. seed (``torch_rng``)                   4. ``create_dataloaders``
2. ``strategy.init()``                    5. ``create_model_loss_optimizer``, then
3. logger context                            ``strategy.distributed`` unless the hook did
6. ``from_checkpoint`` loaded (``load_checkpoint``)
7. ``train()``: per epoch ``set_epoch``, ``train_epoch`` -> ``train_step``,
   ``validation_epoch`` -> ``validation_step``, ``test_epoch`` every ``test_every``; the
   epoch's metrics (means over ranks) are logged, checkpointed and reported
8. cleanup (logger, process group) in ``finally``

Epoch mechanics live in :mod:`.epochs`, itwinai's checkpoint calls in :mod:`.saving`, the
itwinai-only constructor arguments in :mod:`.itwinai_args`. The class is long because its
public surface is itwinai's (about 35 documented members); each body is short.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from .. import _trial_session
from ..components import Trainer
from ..config.training import TrainingConfiguration, make_training_config
from ..distributed import Strategy, get_strategy
from ..errors import ConfigurationError
from . import factories
from .epochs import absorb, call_epoch_hook, evaluate_epoch, run_epoch, to_device
from .itwinai_args import ACCEPTED_ARGS, RAY_ARGS, check_arguments, checked_checkpoint
from .metrics import MetricTracker
from .saving import (
    checkpoint_state,
    keep_epoch_checkpoints,
    load_into,
    report_to_tuner,
    save_named_checkpoint,
)

log = logging.getLogger(__name__)

#: Constructor arguments stored under their own name, unchanged.
_KEPT_AS_GIVEN = ("epochs", "model", "random_seed", "logger", "checkpoint_every", "save_best",
                  "checkpoint_metric", "checkpoint_mode", "test_every",
                  "initial_best_validation_metric")


class EpochReporter(Protocol):
    """Receives a trainer's epoch results (implemented by the tuning layer)."""

    def on_epoch_end(self, trainer: TorchTrainer, epoch: int,
                     metrics: dict[str, float]) -> None: ...

    def report(self, trainer: TorchTrainer, metrics: dict[str, float],
               checkpoint_dir: str | Path | None, checkpoint_data: dict[str, Any] | None) -> None: ...


class TorchTrainer(Trainer):
    """Trains a PyTorch model with a fixed lifecycle and user-overridable hooks.

    The constructor and the members are itwinai 0.4's (docs/itwinai-compat.md lists each, with
    any difference). The main ones:

    Args:
        config: hyperparameters; a dict, a :class:`TrainingConfiguration` or None (defaults).
            Unknown keys are kept and readable as ``self.config.<key>`` from hooks.
        epochs: number of epochs.
        model: an ``nn.Module``, or None when ``create_model_loss_optimizer`` builds it.
        strategy: ``"ddp"`` (default, as itwinai: a single process without a launcher falls
            back to no distribution, with a warning), ``"deepspeed"``, ``"horovod"``,
            ``"none"``, a ``{name: ..., ...}`` dict or a Strategy.
        test_every: run ``test_epoch`` every N epochs (None: never), as itwinai.
        random_seed: seeds torch, numpy and random on every rank; ``self.torch_rng`` is a
            generator seeded with it (for dataloaders).
        logger: an itwinai_ray Logger (or LoggersCollection); None logs to the console only.
        metrics: ``{name: metric}``; each is torchmetrics-style or a callable (pred, target).
        checkpoints_location: directory for ``epoch_<n>/`` and ``best/`` checkpoints.
        checkpoint_every: save ``epoch_<n>`` every N epochs (None: never).
        from_checkpoint: a checkpoint directory (written by ``save_checkpoint`` or the
            framework) to resume model, optimizer, scheduler and the epoch counter from.
        initial_best_validation_metric: starting value of ``best_validation_metric``
            (``"inf"``; with ``checkpoint_mode="max"`` an infinite value starts at ``-inf``).
        save_best: keep ``best/`` whenever ``checkpoint_metric`` improves (default true).
        checkpoint_metric, checkpoint_mode: what "best" means (default: ``loss``, ``min``);
            ``loss`` is the validation loss, or the training loss without a validation set.
        validate_every: run ``validation_epoch`` every N epochs (default 1) and on the first;
            in between the last validation metrics are carried forward.
        resume_from_checkpoint: deprecated spelling of ``from_checkpoint``.

    ``disable_tqdm``, ``measure_epoch_time``, ``measure_gpu_data``, ``enable_torch_profiling``,
    ``store_torch_profiling_traces``, ``profiling_wait_epochs``, ``profiling_warmup_epochs``,
    ``run_name``, ``time_ray`` and the ``ray_*`` settings are accepted as in itwinai; the
    ``ray_*`` ones take effect under :class:`~itwinai_ray.RayTorchTrainer`.
    """

    #: Constructor arguments that are objects or run plumbing, never hyperparameters: a
    #: search space that names one is refused. A subclass adds its own.
    not_tunable_args: ClassVar[frozenset[str]] = frozenset({
        "config", "model", "strategy", "logger", "metrics", "name", "checkpoints_location",
        "from_checkpoint", "resume_from_checkpoint", "run_name", "checkpoint_metric",
        "checkpoint_mode", *RAY_ARGS})

    def __init__(
        self,
        config: dict[str, Any] | TrainingConfiguration | None = None,
        epochs: int = 1,
        model: torch.nn.Module | None = None,
        strategy: str | Strategy | dict[str, Any] | None = "ddp",
        test_every: int | None = None,
        random_seed: int | None = None,
        logger: Any = None,
        metrics: dict[str, Any] | None = None,
        checkpoints_location: str | Path = "checkpoints",
        checkpoint_every: int | None = None,
        disable_tqdm: bool = False,
        name: str | None = None,
        profiling_wait_epochs: int = 0,
        profiling_warmup_epochs: int = 0,
        measure_gpu_data: bool = False,
        enable_torch_profiling: bool = False,
        store_torch_profiling_traces: bool = False,
        measure_epoch_time: bool = False,
        ray_scaling_config: Any = None,
        ray_tune_config: Any = None,
        ray_run_config: Any = None,
        ray_search_space: Any = None,
        ray_torch_config: Any = None,
        ray_data_config: Any = None,
        from_checkpoint: str | Path | None = None,
        initial_best_validation_metric: str | float = "inf",
        run_name: str | None = None,
        time_ray: bool = False,
        *,
        save_best: bool = True,
        checkpoint_metric: str = "loss",
        checkpoint_mode: str = "min",
        validate_every: int | None = None,
        resume_from_checkpoint: str | Path | None = None,
    ) -> None:
        super().__init__(name)
        passed = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        check_arguments(type(self).__name__, passed,
                        ray_args_used=getattr(self, "_runs_on_ray", False))
        self.config = make_training_config(config)
        self.strategy_spec = strategy if strategy is not None else "none"
        self.strategy: Strategy = self._build_strategy(self.strategy_spec)
        self.metrics = dict(metrics) if metrics is not None else {}
        self.checkpoints_location = Path(checkpoints_location)
        self.validate_every = validate_every or 1
        self.from_checkpoint = checked_checkpoint(from_checkpoint, resume_from_checkpoint)
        self.run_name = run_name or f"{type(self).__name__}-{time.strftime('%Y%m%d-%H%M%S')}"
        # Kept as given; itwinai's flags too (see itwinai_args).
        for key in (*_KEPT_AS_GIVEN, *ACCEPTED_ARGS):
            setattr(self, key, passed[key])
        self._init_lifecycle_state()

    def _init_lifecycle_state(self) -> None:
        """What the lifecycle sets (itwinai's names) and what a tuning trial sets."""
        self.loss: Any = None
        self.optimizer: Any = None
        self.lr_scheduler: Any = None
        self.profiler: Any = None  # itwinai's torch profiler slot: never set here
        self.train_dataloader: Any = None
        self.validation_dataloader: Any = None
        self.test_dataloader: Any = None
        self.device = torch.device("cpu")
        # Set by RayTorchTrainer inside a trial's workers: receives every epoch's metrics.
        self.reporter: EpochReporter | None = None
        # In a tuning trial: the checkpoint this trial resumes from (also for ray_report users).
        self.ray_checkpoint_dir: str | None = None
        # False in a tuning trial: the reporter checkpoints each epoch, not best/ or epoch_<n>.
        self.framework_checkpoints = True
        self._reset_run_state()

    def _build_strategy(self, spec: Any) -> Strategy:
        """A strategy named in YAML uses ``config.dist_backend``, as in itwinai."""
        backend = self.config.dist_backend
        if isinstance(spec, str) and backend != "auto" and spec.lower() in ("ddp", "deepspeed"):
            return get_strategy({"name": spec, "backend": backend})
        return get_strategy(spec)

    @property
    def resume_from_checkpoint(self) -> Path | None:
        """Deprecated spelling of :attr:`from_checkpoint`."""
        return self.from_checkpoint

    @resume_from_checkpoint.setter
    def resume_from_checkpoint(self, value: Any) -> None:
        self.from_checkpoint = Path(value) if value is not None else None

    # ------------------------------------------------------------------ lifecycle
    def run_lifecycle(self, *datasets: Any) -> tuple[Any, Any, Any, Any]:
        """The training lifecycle itself: what a tuning trial's workers run. It is ``execute``
        here; a class whose ``execute`` drives HPO (RayTorchTrainer) trains with this."""
        return self.execute(*datasets)

    def execute(self, train_dataset: Any, validation_dataset: Any = None,
                test_dataset: Any = None) -> tuple[Any, Any, Any, Any]:
        """Run the whole lifecycle; return the datasets and the trained (unwrapped) model."""
        if self._uses_builtin_factories():
            factories.validate_names(self.config, self.epochs)
        self._reset_run_state()
        if self.reporter is None:  # inside a Ray Tune trial (run_trial path): report to Tune
            _trial_session.attach(self)
        status = "FAILED"
        self._seed()
        self._fall_back_without_launcher()
        self.strategy.init()
        self.device = self.strategy.device()  # this rank's device, for hooks
        self._setup_metrics()
        try:
            if self.from_checkpoint:  # itwinai's order: states known before the model hook
                self.load_checkpoint_states()
            self._open_logger()
            self.create_dataloaders(train_dataset, validation_dataset, test_dataset)
            self.create_model_loss_optimizer()
            if self.model is None:
                raise ConfigurationError(
                    f"{type(self).__name__}: no model. Pass model=... or set self.model in "
                    f"create_model_loss_optimizer()."
                )
            if not self.strategy.is_distributed_model(self.model, self.optimizer):
                self.model, self.optimizer, self.lr_scheduler = self.strategy.distributed(
                    self.model, self.optimizer, self.lr_scheduler,
                    **self.get_default_distributed_kwargs())
            if self.from_checkpoint:
                self.load_checkpoint()
            self.train()
            self._finish_pending_epoch()  # a custom train() loop's last epoch
            status = "FINISHED"
        finally:
            self._close(status)
        return train_dataset, validation_dataset, test_dataset, self.strategy.unwrap(self.model)

    def _setup_metrics(self) -> None:
        """Metrics with state (torchmetrics) on this rank's device, as itwinai does."""
        for name, metric in self.metrics.items():
            if callable(getattr(metric, "to", None)):
                self.metrics[name] = metric.to(self.device)

    def load_checkpoint_states(self) -> None:
        """itwinai's ``model_state_dict`` / ``optimizer_state_dict`` / ``lr_scheduler_state_dict``
        from ``from_checkpoint``, for model hooks that restore them themselves."""
        from .checkpoint import MODEL_FILE, read_checkpoint_states

        if (Path(self.from_checkpoint) / MODEL_FILE).is_file():
            states = read_checkpoint_states(self.from_checkpoint)
            self.model_state_dict = states["model"]
            self.optimizer_state_dict = states["optimizer"]
            self.lr_scheduler_state_dict = states["lr_scheduler"]

    def _reset_run_state(self) -> None:
        """Each execute() starts fresh: no history, best value, loader or epoch from an
        earlier run."""
        self.train_dataloader = self.validation_dataloader = self.test_dataloader = None
        self.history: list[dict[str, float]] = []
        initial = float(self.initial_best_validation_metric)
        if self.checkpoint_mode == "max" and initial == float("inf"):
            initial = float("-inf")
        self.best_validation_metric: float = initial
        # The framework's own "best" (its best/ checkpoint): the same on every rank, whatever
        # user code does with best_validation_metric on rank 0 (itwinai's train() does).
        self.framework_best: float = initial
        self.current_epoch = 0
        self.start_epoch = 0  # the epoch this run started from (> 0 after a resume)
        self.train_glob_step = 0
        self.validation_glob_step = 0
        self.test_glob_step = 0
        self.epoch_metrics: dict[str, float] = {}
        self._pending_epoch: int | None = None
        self._last_val_metrics: dict[str, float] = {}
        self._tracker = MetricTracker(None)
        self.torch_rng: torch.Generator | None = None
        self.model_state_dict: Any = None
        self.optimizer_state_dict: Any = None
        self.lr_scheduler_state_dict: Any = None
        self.torch_rng_state: Any = None
        self.device = torch.device("cpu")

    #: itwinai's MLflow run ids (set by its own Ray driver); the MLflow runs here are made by
    #: the logger (and, under RayTorchTrainer, one parent run per experiment).
    mlflow_tune_run_id: str | None = None
    mlflow_train_run_id: str | None = None
    mlflow_worker_run_id: str | None = None

    @property
    def mlflow_logger(self) -> Any:
        """The MLFlowLogger among the trainer's loggers (itwinai's attribute), or None."""
        from ..loggers import LoggersCollection, MLFlowLogger

        loggers = self.logger.loggers if isinstance(self.logger, LoggersCollection) else [
            self.logger]
        return next((lg for lg in loggers if isinstance(lg, MLFlowLogger)), None)

    @property
    def best_value(self) -> float | None:
        """Deprecated: :attr:`best_validation_metric` (None before the first epoch)."""
        value = self.best_validation_metric
        return None if value in (float("inf"), float("-inf")) else value

    def _uses_builtin_factories(self) -> bool:
        return type(self).create_model_loss_optimizer is TorchTrainer.create_model_loss_optimizer

    def _seed(self) -> None:
        self.torch_rng = torch.Generator()
        if self.random_seed is None:
            self.torch_rng.seed()
            return
        import numpy as np

        random.seed(self.random_seed)
        np.random.seed(self.random_seed)
        torch.manual_seed(self.random_seed)
        self.torch_rng.manual_seed(self.random_seed)

    def _fall_back_without_launcher(self) -> None:
        """``strategy: ddp`` in a single process with no launcher runs undistributed (itwinai)."""
        from ..distributed.ddp import TorchDDPStrategy, launched_with_several_processes

        if (type(self.strategy) is TorchDDPStrategy and not self.strategy.is_initialized
                and not launched_with_several_processes()):
            log.info("strategy 'ddp' without torchrun/srun/Ray (one process): training "
                        "without distribution. Start N processes with torchrun "
                        "--nproc_per_node=N, or set strategy: none to silence this.")
            self.strategy = get_strategy("none")

    def _open_logger(self) -> None:
        if self.logger is not None:
            self.logger.create_logger_context(rank=self.strategy.global_rank())
            self.logger.save_hyperparameters(
                {**self.config.model_dump(), "epochs": self.epochs,
                 "strategy": self.strategy.name,
                 "world_size": self.strategy.global_world_size()}
            )

    def _close(self, status: str) -> None:
        try:
            if self.logger is not None:
                self.logger.destroy_logger_context(status=status)
            if status == "FINISHED" and self.strategy.global_world_size() > 1:
                # Ranks leave together: a rank that destroys the group while another still
                # closes its logger can abort at exit (gloo, seen under torchrun).
                self.strategy.barrier()
        finally:
            if self.model is not None:  # never left wrapped on a destroyed process group
                self.model = self.strategy.unwrap(self.model)
            self.strategy.clean_up()

    # ------------------------------------------------------------------ hooks
    def create_dataloaders(self, train_dataset: Any, validation_dataset: Any = None,
                           test_dataset: Any = None) -> None:
        """Build the dataloaders through the strategy (DistributedSampler when distributed)."""
        cfg = self.config
        common = {"batch_size": cfg.batch_size, "num_workers": cfg.num_workers_dataloader,
                  "pin_memory": cfg.pin_gpu_memory, "seed": self.random_seed or 0,
                  "generator": self.torch_rng}
        self.train_dataloader = self.strategy.create_dataloader(
            train_dataset, shuffle=cfg.shuffle_train, **common)
        if validation_dataset is not None:
            self.validation_dataloader = self.strategy.create_dataloader(
                validation_dataset, shuffle=cfg.shuffle_validation, **common)
        if test_dataset is not None:
            self.test_dataloader = self.strategy.create_dataloader(
                test_dataset, shuffle=cfg.shuffle_test, **common)

    def create_model_loss_optimizer(self) -> None:
        """Build loss, optimizer and LR scheduler from the config, for ``self.model``.

        An override may end with ``self.strategy.distributed(...)`` as in itwinai; otherwise
        the lifecycle distributes model, optimizer and scheduler right after this hook.
        """
        if self.model is None:
            raise ConfigurationError(
                f"{type(self).__name__}: no model given. Pass model=... to the trainer, or "
                f"override create_model_loss_optimizer() to build it."
            )
        self._set_loss_from_config()
        self._set_optimizer_from_config()
        self._set_lr_scheduler_from_config()

    def _set_optimizer_from_config(self) -> None:
        """``self.optimizer`` from ``config.optimizer`` (itwinai's helper name)."""
        self.optimizer = factories.make_optimizer(self.config, self.model.parameters())

    def _set_lr_scheduler_from_config(self) -> None:
        """``self.lr_scheduler`` from ``config.lr_scheduler`` (None when unset)."""
        self.lr_scheduler = factories.make_lr_scheduler(self.config, self.optimizer, self.epochs)

    def _set_loss_from_config(self) -> None:
        """``self.loss`` from ``config.loss``."""
        self.loss = factories.make_loss(self.config)

    def get_default_distributed_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``strategy.distributed`` (DeepSpeed: the micro-batch size)."""
        return self.strategy.default_distributed_kwargs(self.config)

    def train(self) -> None:
        """The epoch loop. Override only to replace the loop entirely."""
        for epoch in range(self.current_epoch, self.epochs):
            self.current_epoch = epoch
            self._begin_epoch()  # also when an overridden set_epoch() skips super()
            call_epoch_hook(self, self.set_epoch)
            absorb(self, call_epoch_hook(self, self.train_epoch), "train")
            if self.validation_dataloader is not None:
                if (epoch + 1) % self.validate_every == 0 or not self._last_val_metrics:
                    absorb(self, call_epoch_hook(self, self.validation_epoch), "val")
                    self._last_val_metrics = {k: v for k, v in self.epoch_metrics.items()
                                              if k.startswith("val_")}
                # On epochs without validation the last validation values carry forward, so
                # "loss" never switches between training and validation loss.
                self.epoch_metrics = {**self._last_val_metrics, **self.epoch_metrics}
            if (self.test_every and (epoch + 1) % self.test_every == 0
                    and self.test_dataloader is not None):
                absorb(self, call_epoch_hook(self, self.test_epoch), "test")
            self._finish_pending_epoch()

    def set_epoch(self, epoch: int | None = None) -> None:
        """Start an epoch: step the LR scheduler (from the second epoch on) and reshuffle
        the distributed samplers. Call it first in each epoch of an overridden ``train()``.

        ``epoch`` (the pre-0.4 spelling) sets ``current_epoch``; by default it is kept.
        """
        if epoch is not None:
            self.current_epoch = epoch
        self._begin_epoch()  # ends a custom loop's previous epoch
        if self.current_epoch > 0 and self.lr_scheduler is not None and not isinstance(
                self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step()
        for loader in (self.train_dataloader, self.validation_dataloader, self.test_dataloader):
            if loader is not None:
                self.strategy.set_epoch(loader, self.current_epoch)

    def _begin_epoch(self) -> None:
        """Open ``current_epoch`` (once): end the open one, start collecting its metrics."""
        if self._pending_epoch == self.current_epoch:
            return
        self._finish_pending_epoch()
        self.epoch_metrics = {}
        self._pending_epoch = self.current_epoch

    def _finish_pending_epoch(self) -> None:
        """End the open epoch: scheduler on plateau, history, logging, checkpoints, report."""
        epoch, self._pending_epoch = self._pending_epoch, None
        metrics = self.epoch_metrics
        if epoch is None or not metrics:
            return
        if "val_loss" in metrics or "train_loss" in metrics:
            metrics["loss"] = metrics.get("val_loss", metrics.get("train_loss"))
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step(metrics.get("loss", float("nan")))
        self.history.append(dict(metrics))
        self.on_epoch_end(epoch, metrics)
        if self.reporter is not None:
            self.reporter.on_epoch_end(self, epoch, metrics)

    def train_epoch(self, epoch: int | None = None) -> torch.Tensor:
        """One pass over the training data; returns the mean training loss over ranks.

        Its metrics (``train_*``, means over ranks) are in ``self.epoch_metrics``.
        """
        self.model.train()
        return run_epoch(self, self.train_dataloader, self.train_step, "train")

    def validation_epoch(self, epoch: int | None = None) -> torch.Tensor | None:
        """One pass over the validation data (None without one); ``val_*`` metrics."""
        return evaluate_epoch(self, self.validation_dataloader, self.validation_step, "val")

    def test_epoch(self, epoch: int | None = None) -> torch.Tensor | None:
        """One pass over the test data (None without one); ``test_*`` metrics."""
        return evaluate_epoch(self, self.test_dataloader, self.test_step, "test")

    def update_metrics(self, pred: Any, target: Any) -> dict[str, float]:
        """Feed one batch to the user metrics (call from custom train/validation steps)."""
        return self._tracker.update(pred, target) if self.metrics else {}

    def compute_metrics(self, true: Any, pred: Any, logger_step: int,
                        batch_idx: int | None = None, stage: str = "train") -> dict[str, Any]:
        """itwinai's per-batch metrics: feed the user metrics, log and return the values.

        The epoch values (``<stage>_<name>``, means over ranks) follow in the epoch metrics.
        """
        pred = pred.detach() if hasattr(pred, "detach") else pred
        # In a built-in epoch its tracker also accumulates the epoch value; elsewhere (a
        # custom loop) the metrics give this batch's values only.
        tracker = self._tracker if self._tracker.metrics else MetricTracker(self.metrics)
        values = tracker.update(pred, true, with_values=True) if self.metrics else {}
        for m_name, value in values.items():
            self.log(value, f"{stage}_{m_name}", kind="metric", step=logger_step,
                     batch_idx=batch_idx)
        return values

    def train_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One optimisation step on ``(x, y)``; returns the loss and per-batch metrics."""
        x, y = to_device(batch, self.device)
        self.strategy.zero_grad(self.optimizer)
        pred = self.model(x)
        loss = self.loss(pred, y)
        self.strategy.backward(loss, self.model)  # DeepSpeed: engine.backward
        if self.config.gradient_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.gradient_clip_norm)
        self.strategy.optimizer_step(self.model, self.optimizer)  # DeepSpeed: engine.step
        return loss, self.update_metrics(pred.detach(), y)

    def validation_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and metrics of one validation batch (gradients are off)."""
        x, y = to_device(batch, self.device)
        pred = self.model(x)
        return self.loss(pred, y), self.update_metrics(pred, y)

    def test_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and metrics of one test batch (as ``validation_step``)."""
        return self.validation_step(batch, batch_idx)

    def log(self, item: Any, identifier: str | list[str], kind: str = "metric",
            step: int | None = None, batch_idx: int | None = None, **kwargs: Any) -> None:
        """Log ``item`` under ``identifier`` with the trainer's logger (nothing without one)."""
        if self.logger is not None:
            self.logger.log(item, identifier, kind=kind, step=step, batch_idx=batch_idx,
                            **kwargs)

    # ------------------------------------------------------------------ epoch end
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log, checkpoint and report one epoch. RayTorchTrainer extends this to report to Tune."""
        if self.strategy.is_main_worker:
            text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            log.info("epoch %d/%d %s", epoch + 1, self.epochs, text)
        if self.logger is not None:
            for key, value in metrics.items():
                self.logger.log(value, key, kind="metric", step=epoch)
        keep_epoch_checkpoints(self, epoch, metrics)

    def ray_report(self, metrics: dict[str, float], checkpoint_file: str | Path | None = None,
                   checkpoint_dir: str | Path | None = None,
                   checkpoint_data: Any | None = None) -> None:
        """Report metrics (and a checkpoint) to the tuner, as itwinai's ``ray_report``.

        For trainers that override ``train()``: call it once per epoch on every rank. The
        checkpoint is a file (``checkpoint_file``, kept under its name), a directory
        (``checkpoint_dir``) or any object (``checkpoint_data``, saved with ``torch.save`` as
        ``ckpt.pt``). Outside a tuning run this does nothing. Once a trainer reports itself,
        the framework never reports the same epoch again. A resumed trial finds the
        checkpoint with :meth:`get_ray_checkpoint_dir` (or ``ray.train.get_checkpoint()``).
        """
        report_to_tuner(self, metrics, checkpoint_file, checkpoint_dir, checkpoint_data)

    def get_ray_checkpoint_dir(self) -> str | None:
        """The checkpoint directory a resumed trial starts from (None: a fresh trial)."""
        return self.ray_checkpoint_dir

    def write_checkpoint(self, directory: str | Path, epoch: int,
                         metrics: dict[str, float] | None = None) -> Path:
        """Write a checkpoint through the strategy, on every rank together (a collective):
        the main worker writes it, or every rank its shard (DeepSpeed)."""
        return self.strategy.save_checkpoint(
            directory, self.model, self.optimizer, self.lr_scheduler,
            state=checkpoint_state(self, epoch, metrics), config=self.config.model_dump())

    def save_checkpoint(self, name: str, best_validation_metric: Any = None,
                        checkpoints_root: str | Path | None = None,
                        force: bool = False) -> str | None:
        """itwinai's checkpoint call: ``<checkpoints_root or checkpoints_location>/<name>``.

        Written by the main worker only (no other rank waits) when ``force`` is true or the
        epoch is a multiple of ``checkpoint_every``; returns the directory, else None. It
        holds model, optimizer, scheduler, state and config, and is what ``from_checkpoint``
        resumes from. With DeepSpeed it holds the model weights only; use the framework's
        checkpoints (``save_best``/``checkpoint_every``) for the ZeRO optimizer shards.
        """
        return save_named_checkpoint(self, name, best_validation_metric, checkpoints_root, force)

    def load_checkpoint(self, directory: str | Path | None = None) -> dict[str, Any]:
        """Restore model, optimizer, scheduler and the epoch counter from a checkpoint.

        ``directory`` defaults to ``from_checkpoint``, else (in a trial resumed by the tuner)
        the trial's checkpoint. Called before the model exists, it keeps the states in
        ``model_state_dict`` / ``optimizer_state_dict`` / ``lr_scheduler_state_dict``. A
        checkpoint written by ``ray_report(checkpoint_data=obj)`` returns ``obj``.
        """
        return load_into(self, directory)
