"""TorchTrainer: owns the training lifecycle; users override hooks only.

Lifecycle of :meth:`TorchTrainer.execute` (the same under RayTorchTrainer, in every worker):

1. seed                                   4. ``create_dataloaders``
2. ``strategy.init()``                    5. ``create_model_loss_optimizer`` (then wrapped
3. logger context                            by ``strategy.distributed``)
6. ``train()``: per epoch ``train_epoch`` -> ``train_step``, ``validation_epoch`` ->
   ``validation_step``, LR scheduler, metrics gathered over ranks, ``on_epoch_end``
   (checkpoints, logging, reporting)
7. cleanup (logger, process group) in ``finally``
"""

from __future__ import annotations

import inspect
import logging
import random
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import torch

from ..components import Trainer
from ..config.training import TrainingConfiguration
from ..distributed import Strategy, get_strategy
from ..errors import ConfigurationError
from . import factories
from .checkpoint import CKPT_DATA_FILE, apply_changed_hparams, read_checkpoint_states
from .checkpoint import save_checkpoint as save_checkpoint_dir
from .itwinai_args import check_itwinai_args, warn_unused_ray_args
from .metrics import MetricTracker

log = logging.getLogger(__name__)


class EpochReporter(Protocol):
    """Receives a trainer's epoch results (implemented by the tuning layer)."""

    def on_epoch_end(self, trainer: TorchTrainer, epoch: int,
                     metrics: dict[str, float]) -> None: ...

    def report(self, trainer: TorchTrainer, metrics: dict[str, float],
               checkpoint_dir: str | Path | None, checkpoint_data: dict[str, Any] | None) -> None: ...


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _needs_epoch_argument(method: Any) -> bool:
    """True for a pre-0.4 style hook ``train_epoch(self, epoch)`` (a required argument)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params)


def _scalar(value: Any) -> float | None:
    """A loss returned by an epoch hook (tensor, number, numpy scalar) as a float."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


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
        own = type(self).__name__
        if epochs < 1:
            raise ConfigurationError(f"{own}: epochs={epochs} must be >= 1")
        if checkpoint_mode not in ("min", "max"):
            raise ConfigurationError(
                f"{own}: checkpoint_mode={checkpoint_mode!r} must be 'min' or 'max'")
        for key, every in (("test_every", test_every), ("validate_every", validate_every),
                           ("checkpoint_every", checkpoint_every)):
            if every is not None and every < 1:
                raise ConfigurationError(f"{own}: {key}={every} must be >= 1 (or null: never)")
        passed = dict(locals())
        check_itwinai_args(own, passed)
        if not getattr(self, "_runs_on_ray", False):
            warn_unused_ray_args(own, passed)
        self.config = self._make_config(config)
        self.epochs = epochs
        self.model = model
        self.strategy_spec = strategy if strategy is not None else "none"
        self.strategy: Strategy = self._build_strategy(self.strategy_spec)
        self.random_seed = random_seed
        self.logger = logger
        self.metrics = dict(metrics) if metrics is not None else {}
        self.checkpoints_location = Path(checkpoints_location)
        self.checkpoint_every = checkpoint_every
        self.save_best = save_best
        self.checkpoint_metric = checkpoint_metric
        self.checkpoint_mode = checkpoint_mode
        self.test_every = test_every
        self.validate_every = validate_every or 1
        self.from_checkpoint = self._checked_checkpoint(from_checkpoint, resume_from_checkpoint)
        self.initial_best_validation_metric = initial_best_validation_metric
        self.disable_tqdm = disable_tqdm
        self.run_name = run_name or f"{type(self).__name__}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.measure_epoch_time = measure_epoch_time
        self.measure_gpu_data = measure_gpu_data
        self.enable_torch_profiling = enable_torch_profiling
        self.store_torch_profiling_traces = store_torch_profiling_traces
        self.profiling_wait_epochs = profiling_wait_epochs
        self.profiling_warmup_epochs = profiling_warmup_epochs
        self.time_ray = time_ray
        self.ray_torch_config = ray_torch_config
        self.ray_data_config = ray_data_config
        # Set by the lifecycle (itwinai's names)
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
        self._reset_run_state()

    @staticmethod
    def _make_config(config: Any) -> TrainingConfiguration:
        if config is None:
            return TrainingConfiguration()
        if isinstance(config, TrainingConfiguration):
            return config
        if isinstance(config, dict):
            from pydantic import ValidationError

            try:
                return TrainingConfiguration(**config)
            except ValidationError as exc:
                raise ConfigurationError(f"Invalid trainer config: {exc}") from None
        raise ConfigurationError(
            f"TorchTrainer config must be a dict or TrainingConfiguration, got "
            f"{type(config).__name__}"
        )

    def _build_strategy(self, spec: Any) -> Strategy:
        """A strategy named in YAML uses ``config.dist_backend``, as in itwinai."""
        backend = self.config.dist_backend
        if isinstance(spec, str) and backend != "auto" and spec.lower() in ("ddp", "deepspeed"):
            return get_strategy({"name": spec, "backend": backend})
        return get_strategy(spec)

    @staticmethod
    def _checked_checkpoint(path: Any, old_spelling: Any) -> Path | None:
        if old_spelling is not None:
            warnings.warn("TorchTrainer(resume_from_checkpoint=...) is deprecated: use "
                          "from_checkpoint=... (itwinai's name)", DeprecationWarning, stacklevel=3)
            path = path or old_spelling
        if path is None:
            return None
        if not Path(path).exists():
            raise ConfigurationError(
                f"from_checkpoint={str(path)!r} does not exist: give a checkpoint directory "
                f"written by save_checkpoint (e.g. <checkpoints_location>/best_model)")
        return Path(path)

    @property
    def resume_from_checkpoint(self) -> Path | None:
        """Deprecated spelling of :attr:`from_checkpoint`."""
        return self.from_checkpoint

    @resume_from_checkpoint.setter
    def resume_from_checkpoint(self, value: Any) -> None:
        self.from_checkpoint = Path(value) if value is not None else None

    # ------------------------------------------------------------------ lifecycle
    def execute(self, train_dataset: Any, validation_dataset: Any = None,
                test_dataset: Any = None) -> tuple[Any, Any, Any, Any]:
        """Run the whole lifecycle; return the datasets and the trained (unwrapped) model."""
        if self._uses_builtin_factories():
            factories.validate_names(self.config, self.epochs)
        self._reset_run_state()
        if self.reporter is None:  # inside a Ray Tune trial (run_trial path): report to Tune
            from ..tuning.trial import attach_to_tune_session

            attach_to_tune_session(self)
        status = "FAILED"
        self._seed()
        self._fall_back_without_launcher()
        self.strategy.init()
        self.device = self.strategy.device()  # this rank's device, for hooks
        try:
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

    def _reset_run_state(self) -> None:
        """Each execute() starts fresh: no history, best value or epoch from an earlier run."""
        self.history: list[dict[str, float]] = []
        initial = float(self.initial_best_validation_metric)
        if self.checkpoint_mode == "max" and initial == float("inf"):
            initial = float("-inf")
        self.best_validation_metric: float = initial
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
            self.set_epoch()
            self._absorb(self._call_epoch_hook(self.train_epoch), "train")
            if self.validation_dataloader is not None:
                if (epoch + 1) % self.validate_every == 0 or not self._last_val_metrics:
                    self._absorb(self._call_epoch_hook(self.validation_epoch), "val")
                    self._last_val_metrics = {k: v for k, v in self.epoch_metrics.items()
                                              if k.startswith("val_")}
                # On epochs without validation the last validation values carry forward, so
                # "loss" never switches between training and validation loss.
                self.epoch_metrics = {**self._last_val_metrics, **self.epoch_metrics}
            if (self.test_every and (epoch + 1) % self.test_every == 0
                    and self.test_dataloader is not None):
                self._absorb(self._call_epoch_hook(self.test_epoch), "test")
            self._finish_pending_epoch()

    def set_epoch(self, epoch: int | None = None) -> None:
        """Start an epoch: step the LR scheduler (from the second epoch on) and reshuffle
        the distributed samplers. Call it first in each epoch of an overridden ``train()``.

        ``epoch`` (the pre-0.4 spelling) sets ``current_epoch``; by default it is kept.
        """
        self._finish_pending_epoch()  # a custom loop's previous epoch
        if epoch is not None:
            self.current_epoch = epoch
        self.epoch_metrics = {}
        self._pending_epoch = self.current_epoch
        if self.current_epoch > 0 and self.lr_scheduler is not None and not isinstance(
                self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step()
        for loader in (self.train_dataloader, self.validation_dataloader, self.test_dataloader):
            if loader is not None:
                self.strategy.set_epoch(loader, self.current_epoch)

    def _call_epoch_hook(self, hook: Any) -> Any:
        if _needs_epoch_argument(hook):
            warnings.warn(f"{type(self).__name__}.{hook.__name__}(self, epoch) is the pre-0.4 "
                          f"signature: define {hook.__name__}(self) and read "
                          f"self.current_epoch", DeprecationWarning, stacklevel=2)
            return hook(self.current_epoch)
        return hook()

    def _absorb(self, returned: Any, prefix: str) -> None:
        """An epoch hook's result: a dict of metrics, or a loss (itwinai) for ``<prefix>_loss``.

        The built-in epoch hooks already put their metrics, averaged over ranks, in
        ``self.epoch_metrics``; a loss returned by an override is averaged here.
        """
        if isinstance(returned, dict):
            self.epoch_metrics.update({k: float(v) for k, v in returned.items()})
            return
        value = _scalar(returned) if returned is not None else None
        if value is not None and f"{prefix}_loss" not in self.epoch_metrics:
            self.epoch_metrics[f"{prefix}_loss"] = self.strategy.reduce_mean(value)

    def _finish_pending_epoch(self) -> None:
        """End the open epoch: scheduler on plateau, history, logging, checkpoints, report."""
        epoch, self._pending_epoch = self._pending_epoch, None
        metrics = self.epoch_metrics
        if epoch is None or not metrics:
            return
        if "train_loss" in metrics:
            metrics["loss"] = metrics.get("val_loss", metrics["train_loss"])
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step(metrics.get("loss", float("nan")))
        self.history.append(dict(metrics))
        self.on_epoch_end(epoch, metrics)
        if self.reporter is not None:
            self.reporter.on_epoch_end(self, epoch, metrics)

    def _run_epoch(self, loader: Any, step_fn: Any, prefix: str) -> torch.Tensor:
        self._tracker = MetricTracker(self.metrics)
        loss_sum: torch.Tensor | None = None  # stays on the device: no sync per step
        sums: dict[str, float] = {}
        n_batches = 0
        counter = {"train": "train_glob_step", "val": "validation_glob_step",
                   "test": "test_glob_step"}[prefix]
        for batch_idx, batch in enumerate(loader):
            loss, batch_metrics = step_fn(batch, batch_idx)
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
            for key, value in (batch_metrics or {}).items():
                sums[key] = sums.get(key, 0.0) + float(value)
            n_batches += 1
            setattr(self, counter, getattr(self, counter) + 1)
            if self.logger is not None and self.logger.should_log(batch_idx):
                self.logger.log(float(loss.detach()), f"{prefix}_loss_batch", kind="metric",
                                step=getattr(self, counter), batch_idx=batch_idx)
        n = max(n_batches, 1)
        local = {f"{prefix}_loss": float(loss_sum) / n if loss_sum is not None else float("nan")}
        local.update({f"{prefix}_{k}": v / n for k, v in sums.items()})
        # Epoch-level values of the user metrics (exact for torchmetrics-style objects).
        local.update({f"{prefix}_{k}": v for k, v in self._tracker.compute().items()})
        # The metric everyone sees is the mean over ranks, not rank 0's local value.
        reduced = {k: self.strategy.reduce_mean(v) for k, v in local.items()}
        self.epoch_metrics.update(reduced)
        return torch.tensor(reduced[f"{prefix}_loss"])

    def train_epoch(self, epoch: int | None = None) -> torch.Tensor:
        """One pass over the training data; returns the mean training loss over ranks.

        Its metrics (``train_*``, means over ranks) are in ``self.epoch_metrics``.
        """
        self.model.train()
        return self._run_epoch(self.train_dataloader, self.train_step, "train")

    def validation_epoch(self, epoch: int | None = None) -> torch.Tensor | None:
        """One pass over the validation data (None without one); ``val_*`` metrics."""
        if self.validation_dataloader is None:
            return None
        self.model.eval()
        with torch.no_grad():
            return self._run_epoch(self.validation_dataloader, self.validation_step, "val")

    def test_epoch(self, epoch: int | None = None) -> torch.Tensor | None:
        """One pass over the test data (None without one); ``test_*`` metrics."""
        if self.test_dataloader is None:
            return None
        self.model.eval()
        with torch.no_grad():
            return self._run_epoch(self.test_dataloader, self.test_step, "test")

    def update_metrics(self, pred: Any, target: Any) -> dict[str, float]:
        """Feed one batch to the user metrics (call from custom train/validation steps)."""
        return self._tracker.update(pred, target) if self.metrics else {}

    def compute_metrics(self, true: Any, pred: Any, logger_step: int,
                        batch_idx: int | None = None, stage: str = "train") -> dict[str, Any]:
        """itwinai's per-batch metrics: feed the user metrics, log and return the values.

        The epoch values (``<stage>_<name>``, means over ranks) follow in the epoch metrics.
        """
        values = self.update_metrics(pred.detach() if hasattr(pred, "detach") else pred, true)
        for m_name, value in values.items():
            self.log(value, f"{stage}_{m_name}", kind="metric", step=logger_step,
                     batch_idx=batch_idx)
        return values

    def train_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One optimisation step on ``(x, y)``; returns the loss and per-batch metrics."""
        x, y = _to_device(batch, self.device)
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
        x, y = _to_device(batch, self.device)
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
        self._maybe_checkpoint(epoch, metrics)

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
        if self.reporter is None:
            return
        with tempfile.TemporaryDirectory(prefix="itwinai-ray-ckpt-") as tmp:
            if checkpoint_file is not None and checkpoint_dir is None:
                shutil.copy(checkpoint_file, tmp)
                checkpoint_dir = tmp
            elif checkpoint_data is not None and checkpoint_dir is None:
                torch.save(checkpoint_data, Path(tmp) / CKPT_DATA_FILE)
                checkpoint_dir = tmp
            self.reporter.report(self, dict(metrics), checkpoint_dir, None)

    def get_ray_checkpoint_dir(self) -> str | None:
        """The checkpoint directory a resumed trial starts from (None: a fresh trial)."""
        return self.ray_checkpoint_dir

    def _maybe_checkpoint(self, epoch: int, metrics: dict[str, float]) -> None:
        targets = []
        if self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0:
            targets.append(self.checkpoints_location / f"epoch_{epoch + 1}")
        value = metrics.get(self.checkpoint_metric)
        if value is None and (self.save_best or self.checkpoint_every):
            raise ConfigurationError(
                f"checkpoint_metric={self.checkpoint_metric!r} is not among the epoch's "
                f"metrics: {', '.join(sorted(metrics))}"
            )
        if value is not None and self._is_better(value):
            self.best_validation_metric = value
            if self.save_best:
                targets.append(self.checkpoints_location / "best")
        for target in targets:
            self.write_checkpoint(target, epoch, metrics)

    def _is_better(self, value: float) -> bool:
        best = self.best_validation_metric
        return value < best if self.checkpoint_mode == "min" else value > best

    def write_checkpoint(self, directory: str | Path, epoch: int,
                         metrics: dict[str, float] | None = None) -> Path:
        """Write a checkpoint through the strategy, on every rank together (a collective):
        the main worker writes it, or every rank its shard (DeepSpeed)."""
        return self.strategy.save_checkpoint(
            directory, self.model, self.optimizer, self.lr_scheduler,
            state=self._checkpoint_state(epoch, metrics), config=self.config.model_dump())

    def _checkpoint_state(self, epoch: int, metrics: dict[str, float] | None) -> dict[str, Any]:
        best = self.best_value
        return {"epoch": epoch, "best_value": best, "best_validation_metric": best,
                "random_seed": self.random_seed, "metrics": metrics or {}}

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
        periodic = bool(self.checkpoint_every) and (
            (self.current_epoch + 1) % self.checkpoint_every == 0)
        if not (self.strategy.is_main_worker and (force or periodic)):
            return None
        path = Path(checkpoints_root or self.checkpoints_location) / name
        if best_validation_metric is not None:
            self.best_validation_metric = float(_scalar(best_validation_metric))
        sharded = self.strategy.checkpoint_on_all_ranks
        save_checkpoint_dir(path, self.strategy.unwrap(self.model),
                            None if sharded else self.optimizer,
                            None if sharded else self.lr_scheduler,
                            state=self._checkpoint_state(self.current_epoch, self.epoch_metrics),
                            config=self.config.model_dump())
        return str(path)

    def load_checkpoint(self, directory: str | Path | None = None) -> dict[str, Any]:
        """Restore model, optimizer, scheduler and the epoch counter from a checkpoint.

        ``directory`` defaults to ``from_checkpoint``, else (in a trial resumed by the tuner)
        the trial's checkpoint. Called before the model exists, it keeps the states in
        ``model_state_dict`` / ``optimizer_state_dict`` / ``lr_scheduler_state_dict``. A
        checkpoint written by ``ray_report(checkpoint_data=obj)`` returns ``obj``.
        """
        if directory is None:
            directory = self.from_checkpoint or self.ray_checkpoint_dir
        if directory is None:
            return {}
        data_file = Path(directory) / CKPT_DATA_FILE
        if data_file.is_file() and not (Path(directory) / "model.pt").is_file():
            return torch.load(data_file, map_location="cpu", weights_only=False)  # ray_report's
        if self.model is None:
            return self._read_states(directory)
        state = self.strategy.load_checkpoint(directory, self.model, self.optimizer,
                                              self.lr_scheduler)
        for key, old, new in apply_changed_hparams(directory, self.config.model_dump(),
                                                   self.optimizer, self.lr_scheduler):
            log.info("Resume: %s changed from %s to %s", key, old, new)
        self.current_epoch = self.start_epoch = int(state.get("epoch", -1)) + 1
        best = state.get("best_validation_metric", state.get("best_value"))
        if best is not None:
            self.best_validation_metric = float(best)
        if self.strategy.is_main_worker:
            log.info("Resumed from %s at epoch %d", directory, self.current_epoch + 1)
        return state

    def _read_states(self, directory: str | Path) -> dict[str, Any]:
        states = read_checkpoint_states(directory)
        self.model_state_dict = states.get("model")
        self.optimizer_state_dict = states.get("optimizer")
        self.lr_scheduler_state_dict = states.get("lr_scheduler")
        return states.get("state", {})
