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

This module holds the constructor, the state and the lifecycle. The members users override
or call are mixins of one concept each: the setup hooks (:mod:`.hooks`), the loop with its
epoch and step hooks (:mod:`.loop`; one epoch's mechanics in :mod:`.epochs`) and the
checkpoint calls (:mod:`.saving`). The itwinai-only constructor arguments are checked in
:mod:`.itwinai_args`.
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
from .hooks import SetupHooks
from .itwinai_args import ACCEPTED_ARGS, RAY_ARGS, check_arguments, checked_checkpoint
from .loop import TrainingLoop
from .metrics import MetricTracker
from .saving import CheckpointMethods

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


class TorchTrainer(TrainingLoop, SetupHooks, CheckpointMethods, Trainer):
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
