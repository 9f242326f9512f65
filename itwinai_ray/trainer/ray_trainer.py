"""RayTorchTrainer: the same trainer, tuned on Ray, with every trial distributed.

Two ways to use it, with the user's hooks unchanged:

(a) subclass it instead of TorchTrainer::

        class MyTrainer(RayTorchTrainer): ...   # same hooks as before

(b) wrap an existing trainer in YAML, without touching its Python code::

        - class_path: itwinai_ray.RayTorchTrainer
          init_args:
            trainer: {class_path: my_pkg.MyTrainer, init_args: {...}}
            scaling_config: {num_workers: 2}
            tune_config: {num_samples: 8, scheduler: asha, search_alg: optuna}
            search_space: {optim_lr: {type: loguniform, lower: 1e-4, upper: 1e-1}}

Without any Ray setting (no ``ray_*``, ``scaling_config``, ``tune_config``, ``run_config`` or
``search_space``) ``execute()`` trains once without Ray, as itwinai 0.4's TorchTrainer does:
the same class runs under torchrun and as an HPO driver.

``execute()`` checks everything it can before Ray starts (search-space keys against what the
trainer reads, searcher, scheduler, settings), then runs one trial per sampled configuration.
Each worker of each trial runs the trainer's own lifecycle (see ``tuning/trial.py``); the
framework reports the epoch metrics, averaged over ranks, and a checkpoint to Tune.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from ..distributed.ddp import launched_with_several_processes
from ..errors import ConfigurationError
from ..tuning import search_space
from ..tuning.experiment import Plan, plan_search
from ..tuning.results import HPOResults
from ..tuning.settings import RunSettings, ScalingSettings, TorchSettings, TuneSettings, pick
from ..tuning.trial import NOT_TUNABLE, attribute_keys, config_keys, run_trainer_in_worker
from .torch_trainer import TorchTrainer

log = logging.getLogger(__name__)

_RAY_INIT_KEYS = ("address", "num_cpus", "num_gpus", "include_dashboard")


class RayTorchTrainer(TorchTrainer):

    """Hyperparameter optimisation of a TorchTrainer on Ray Tune + Ray Train V2.

    Args:
        trainer: a TorchTrainer to tune (mode b). None: tune this trainer itself (mode a,
            a subclass with the usual hooks).
        scaling_config: ``num_workers`` (1: no worker group), ``use_gpu``,
            ``resources_per_worker`` per trial.
        tune_config: ``num_samples``, ``metric`` (default: the scheduler's, else ``loss``),
            ``mode`` (default ``min``; lists for several metrics), ``search_alg`` (``random``,
            ``grid``, ``optuna``, ``hyperopt``, ``bayesopt``, ``nevergrad``, ``bohb``, a
            ``_target_``), ``scheduler`` (``fifo``, ``asha``, ``median``, ``hyperband``,
            ``pbt``, ``pb2``, a ``_target_``),
            ``max_concurrent_trials`` (default: what the cluster holds), ``time_budget_s``,
            ``stop`` (per trial, e.g. ``{val_loss: 0.1}`` or ``{training_iteration: 5}``).
        run_config: ``name``, ``storage_path`` (shared across nodes), ``checkpoint_frequency``
            (epochs), ``checkpoint_num_to_keep``, ``max_failures`` (trial retries),
            ``worker_max_failures`` (worker-group restarts inside a trial), ``fail_fast``,
            ``resume`` (true, auto: continue ``storage_path/name`` after a crash),
            ``min_free_disk_gb``.
        search_space: ``{key: {type: choice|uniform|loguniform|..., ...}}``. Each key must be
            read by the trainer: a config field or extra key, or a constructor argument.
        ray_init: used only when no cluster is given by ``address`` or ``$RAY_ADDRESS``:
            ``num_cpus``, ``num_gpus`` for the local Ray started for this run.
        ray_scaling_config, ray_tune_config, ray_run_config, ray_search_space: itwinai 0.4
            names of the four settings above; Ray config objects are accepted as values.
        ray_torch_config: the trials' process group: ``backend`` (nccl, gloo) and
            ``timeout_s``, a mapping or a ``ray.train.torch.TorchConfig``.
        ray_data_config: accepted for itwinai configs; datasets reach the workers through
            Ray's object store, not Ray Data, so it has no effect (noted in the log).
        *args, **kwargs: TorchTrainer arguments (mode a).
    """

    # itwinai's ray_* arguments are this class's own: TorchTrainer does not warn about them.
    _runs_on_ray = True

    def __init__(
        self,
        *args: Any,
        trainer: TorchTrainer | None = None,
        scaling_config: Any = None,
        tune_config: Any = None,
        run_config: Any = None,
        search_space: Any = None,
        ray_init: dict[str, Any] | None = None,
        ray_scaling_config: Any = None,
        ray_tune_config: Any = None,
        ray_run_config: Any = None,
        ray_search_space: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if trainer is not None and not isinstance(trainer, TorchTrainer):
            raise ConfigurationError(
                f"RayTorchTrainer(trainer=...) must be a TorchTrainer, got "
                f"{type(trainer).__name__}."
            )
        if isinstance(trainer, RayTorchTrainer):
            raise ConfigurationError("RayTorchTrainer cannot wrap another RayTorchTrainer.")
        self.trainer = trainer
        self.ray_scaling_config, self.ray_tune_config = ray_scaling_config, ray_tune_config
        self.ray_run_config, self.ray_search_space = ray_run_config, ray_search_space
        #: Whether any Ray setting was given (itwinai's TorchTrainer trains directly otherwise).
        self.hpo_requested = any(v is not None for v in (
            scaling_config, tune_config, run_config, search_space, ray_scaling_config,
            ray_tune_config, ray_run_config, ray_search_space))
        self.scaling = ScalingSettings.from_any(
            pick(scaling_config, ray_scaling_config, "scaling_config", "ray_scaling_config"))
        self.tune = TuneSettings.from_any(
            pick(tune_config, ray_tune_config, "tune_config", "ray_tune_config"))
        self.run = RunSettings.from_any(
            pick(run_config, ray_run_config, "run_config", "ray_run_config"))
        self.search_space = pick(search_space, ray_search_space, "search_space",
                                 "ray_search_space") or {}
        self.torch_settings = TorchSettings.from_any(self.ray_torch_config)
        if self.ray_data_config is not None:
            log.info("RayTorchTrainer: ray_data_config has no effect: datasets reach the "
                     "workers through Ray's object store (not Ray Data).")
        self.ray_init = dict(ray_init or {})
        for key in self.ray_init:
            if key not in _RAY_INIT_KEYS:
                raise ConfigurationError(
                    f"Unknown key '{key}' in ray_init. Accepted keys: {', '.join(_RAY_INIT_KEYS)}."
                )
        self.results: HPOResults | None = None
        self.tune_result_grid: HPOResults | None = None
        #: (pipeline config, pipe key), set by the CLI: saved as pipeline.yaml in the
        #: experiment directory for `itwinai-ray results` (ready-to-run best config).
        self.pipeline_source: tuple[dict[str, Any], str] | None = None

    @property
    def target(self) -> TorchTrainer:
        """The trainer whose lifecycle runs in the workers."""
        return self.trainer if self.trainer is not None else self

    # ------------------------------------------------------------------ preparation
    def plan(self) -> Plan:
        """Validate and build everything that does not need a cluster. Raises on bad input."""
        target = self.target
        space = search_space.build_search_space(self.search_space)
        in_config, as_attr = config_keys(target), attribute_keys(target)
        plumbing = sorted(set(space) & NOT_TUNABLE)
        if plumbing:
            raise ConfigurationError(
                f"Search-space key {plumbing[0]!r} is an argument of {type(target).__name__} "
                f"that cannot be tuned (objects and run settings: {', '.join(sorted(NOT_TUNABLE))}"
                f"). Remove it from the search space.")
        for line in search_space.new_config_keys(space, in_config | as_attr,
                                                 type(target).__name__):
            log.warning("%s", line)
        self._check_values(target, space)
        name = self.run.name or f"{type(target).__name__}_{time.strftime('%Y%m%d-%H%M%S')}"
        if not self.run.resume:  # never into an earlier run's directory
            from ..tuning.experiment import new_experiment_name

            name = new_experiment_name(self.run.resolved_storage_path(), name)
        return plan_search(space, self.tune, name=name, max_epochs=target.epochs,
                           who="RayTorchTrainer")

    @staticmethod
    def _check_values(target: TorchTrainer, space: dict[str, Any]) -> None:
        """Every value the space can give must make a valid config (each category and grid
        value, numeric bounds, no float domain for an integer), and built-in names must exist.
        """
        import copy

        from ..trainer import factories
        from ..tuning.trial import apply_trial_values
        from ..tuning.value_check import check_space_values

        check_space_values(target, space, apply_trial_values)
        probe = copy.copy(target)
        for key in ("optimizer", "loss", "lr_scheduler"):
            domain = space.get(key)
            values = getattr(domain, "categories", None) or (
                domain.get("grid_search") if isinstance(domain, dict) else None) or []
            for value in values:
                cfg = probe.config.model_copy(update={key: value})
                factories.validate_names(cfg, target.epochs)

    # ------------------------------------------------------------------ lifecycle
    def execute(self, train_dataset: Any, validation_dataset: Any = None,
                test_dataset: Any = None) -> tuple[Any, Any, Any, HPOResults]:
        """Run the HPO experiment; return the datasets and the results (best trial, table)."""
        from ..tuning.experiment import run_hpo

        if not self.hpo_requested:  # as itwinai's TorchTrainer: no Ray settings, no Ray
            log.info("%s: no Ray settings (ray_scaling_config, ray_tune_config, ...): training "
                     "once, without Ray.", type(self).__name__)
            return self.target_lifecycle(train_dataset, validation_dataset, test_dataset)
        if launched_with_several_processes():  # torchrun/srun -n N: never N experiments
            log.warning("%s: started as one of several processes (torchrun/srun): training "
                        "once, distributed, and ignoring the Ray settings. Run HPO from one "
                        "process: itwinai-ray exec-pipeline ...", type(self).__name__)
            return self.target_lifecycle(train_dataset, validation_dataset, test_dataset)
        plan = self.plan()
        worker_fn = functools.partial(
            run_trainer_in_worker, trainer=self.target,
            datasets=(train_dataset, validation_dataset, test_dataset),
            checkpoint_frequency=self.run.checkpoint_frequency)
        self._save_pipeline_source(plan.name)
        self.results = run_hpo(worker_fn, plan, scaling=self.scaling, tune=self.tune,
                               run=self.run, ray_init=self.ray_init, torch=self.torch_settings)
        self.tune_result_grid = self.results  # itwinai's name (there: Ray's ResultGrid)
        return train_dataset, validation_dataset, test_dataset, self.results

    def run_lifecycle(self, *datasets: Any) -> tuple[Any, Any, Any, Any]:
        """TorchTrainer's lifecycle, not this class's HPO ``execute`` (mode a's workers)."""
        return TorchTrainer.execute(self, *datasets)

    def target_lifecycle(self, *datasets: Any) -> tuple[Any, Any, Any, Any]:
        """The tuned trainer's own lifecycle, run once here (TorchTrainer's ``execute``)."""
        return self.target.run_lifecycle(*datasets)

    def _save_pipeline_source(self, name: str) -> None:
        if self.pipeline_source is None or (self.run.resume and not self.run.name):
            return  # (a resumed run without a name finds its directory later)
        from pathlib import Path

        from ..report.loading import save_pipeline_source
        from ..tuning.storage import check_storage

        check_storage(self.run.resolved_storage_path(), self.run.min_free_disk_gb)

        config, pipe_key = self.pipeline_source
        save_pipeline_source(Path(self.run.resolved_storage_path()) / name, config, pipe_key)
