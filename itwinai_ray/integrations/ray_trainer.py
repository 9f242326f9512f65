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

The HPO driving (settings, plan, Tuner, results) is a separate object that the trainer holds,
``self.hpo`` (:class:`~itwinai_ray.integrations.hpo.TrainerHPO`). It stays on the driver: the
workers receive the trainer to tune (the wrapped one, or a copy of this one without ``hpo``).
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..distributed.ddp import launched_with_several_processes
from ..errors import ConfigurationError
from ..trainer.torch_trainer import TorchTrainer
from ..tuning.experiment import Plan
from ..tuning.results import HPOResults
from .hpo import TrainerHPO

log = logging.getLogger(__name__)


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
        #: The HPO driving: settings, plan, experiment, results (never sent to a worker).
        self.hpo: TrainerHPO | None = TrainerHPO.from_arguments(
            scaling_config=scaling_config, tune_config=tune_config, run_config=run_config,
            search_space=search_space, ray_init=ray_init, ray_scaling_config=ray_scaling_config,
            ray_tune_config=ray_tune_config, ray_run_config=ray_run_config,
            ray_search_space=ray_search_space, ray_torch_config=self.ray_torch_config,
            ray_data_config=self.ray_data_config)
        #: The last HPO run's results (``tune_result_grid``: itwinai's name, there Ray's
        #: ResultGrid); the driver's, also held by ``self.hpo``.
        self.results: HPOResults | None = None
        self.tune_result_grid: HPOResults | None = None

    @property
    def target(self) -> TorchTrainer:
        """The trainer whose lifecycle runs in the workers."""
        return self.trainer if self.trainer is not None else self

    def worker_trainer(self) -> TorchTrainer:
        """What each Ray Train worker of each trial receives: the wrapped trainer (mode b), or
        a copy of this one without its HPO driving (mode a), which runs the user's hooks."""
        if self.trainer is not None:
            return self.trainer
        clone = copy.copy(self)
        clone.hpo = None
        for name in ("results", "tune_result_grid"):  # an earlier run's (not a user's value)
            if isinstance(getattr(clone, name, None), HPOResults):
                setattr(clone, name, None)
        return clone

    # ------------------------------------------------------------------ preparation
    def plan(self) -> Plan:
        """Validate and build everything that does not need a cluster. Raises on bad input."""
        return self._driver().plan(self.target, self.not_tunable_args)

    def _driver(self) -> TrainerHPO:
        if self.hpo is None:
            raise ConfigurationError(f"{type(self).__name__}: this copy runs in a Ray worker "
                                     f"and holds no HPO settings; tune from the driver.")
        return self.hpo

    # ------------------------------------------------------------------ lifecycle
    def execute(self, train_dataset: Any, validation_dataset: Any = None,
                test_dataset: Any = None) -> tuple[Any, Any, Any, HPOResults]:
        """Run the HPO experiment; return the datasets and the results (best trial, table)."""
        if not self._driver().requested:  # as itwinai's TorchTrainer: no Ray settings, no Ray
            log.info("%s: no Ray settings (ray_scaling_config, ray_tune_config, ...): training "
                     "once, without Ray.", type(self).__name__)
            return self.target_lifecycle(train_dataset, validation_dataset, test_dataset)
        if launched_with_several_processes():  # torchrun/srun -n N: never N experiments
            log.warning("%s: started as one of several processes (torchrun/srun): training "
                        "once, distributed, and ignoring the Ray settings. Run HPO from one "
                        "process: itwinai-ray exec-pipeline ...", type(self).__name__)
            return self.target_lifecycle(train_dataset, validation_dataset, test_dataset)
        datasets = (train_dataset, validation_dataset, test_dataset)
        results = self._driver().execute(self.worker_trainer(), datasets, self.not_tunable_args)
        self.results = self.tune_result_grid = results
        return train_dataset, validation_dataset, test_dataset, results

    def run_lifecycle(self, *datasets: Any) -> tuple[Any, Any, Any, Any]:
        """TorchTrainer's lifecycle, not this class's HPO ``execute`` (mode a's workers)."""
        return TorchTrainer.execute(self, *datasets)

    def target_lifecycle(self, *datasets: Any) -> tuple[Any, Any, Any, Any]:
        """The tuned trainer's own lifecycle, run once here (TorchTrainer's ``execute``)."""
        return self.target.run_lifecycle(*datasets)


def keyword_arguments(init: Callable[..., Any]) -> frozenset[str]:
    """The keyword-only argument names of a constructor."""
    return frozenset(p.name for p in inspect.signature(init).parameters.values()
                     if p.kind is p.KEYWORD_ONLY)


#: Never hyperparameters: TorchTrainer's plumbing plus this class's own HPO arguments.
RayTorchTrainer.not_tunable_args = (TorchTrainer.not_tunable_args
                                    | keyword_arguments(RayTorchTrainer.__init__))
