"""TrainerHPO: the HPO driving of a RayTorchTrainer (settings, plan, experiment, results).

A :class:`~itwinai_ray.integrations.ray_trainer.RayTorchTrainer` holds one as ``trainer.hpo``,
built from its HPO keyword arguments. It lives on the driver only: what each Ray Train worker
of each trial receives is the trainer to tune, never this object (see
``RayTorchTrainer.worker_trainer``).
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..trainer import factories
from ..trainer.torch_trainer import TorchTrainer
from ..tuning import search_space
from ..tuning.experiment import Plan, new_experiment_name, plan_search, run_hpo
from ..tuning.results import HPOResults
from ..tuning.settings import RunSettings, ScalingSettings, TorchSettings, TuneSettings, pick
from ..tuning.trial import apply_trial_values, attribute_keys, config_keys, run_trainer_in_worker
from ..tuning.value_check import check_space_values

log = logging.getLogger(__name__)

RAY_INIT_KEYS = ("address", "num_cpus", "num_gpus", "include_dashboard")


@dataclass
class TrainerHPO:
    """What an HPO run of one trainer needs besides the trainer: validated settings, then the
    results. Build it with :meth:`from_arguments` (RayTorchTrainer's keyword arguments)."""

    scaling: ScalingSettings
    tune: TuneSettings
    run: RunSettings
    search_space: dict[str, Any]
    torch: TorchSettings
    ray_init: dict[str, Any]
    #: Whether any Ray setting was given (itwinai's TorchTrainer trains directly otherwise).
    requested: bool = False
    results: HPOResults | None = None
    #: (pipeline config, pipe key), set by the CLI: saved as pipeline.yaml in the experiment
    #: directory for `itwinai-ray results` (ready-to-run best config).
    pipeline_source: tuple[dict[str, Any], str] | None = None

    @classmethod
    def from_arguments(cls, *, scaling_config: Any = None, tune_config: Any = None,
                       run_config: Any = None, search_space: Any = None,
                       ray_init: dict[str, Any] | None = None, ray_scaling_config: Any = None,
                       ray_tune_config: Any = None, ray_run_config: Any = None,
                       ray_search_space: Any = None, ray_torch_config: Any = None,
                       ray_data_config: Any = None) -> TrainerHPO:
        """Validate RayTorchTrainer's HPO arguments (both spellings: ours and itwinai's)."""
        requested = any(v is not None for v in (
            scaling_config, tune_config, run_config, search_space, ray_scaling_config,
            ray_tune_config, ray_run_config, ray_search_space))
        scaling = ScalingSettings.from_any(
            pick(scaling_config, ray_scaling_config, "scaling_config", "ray_scaling_config"))
        tune = TuneSettings.from_any(
            pick(tune_config, ray_tune_config, "tune_config", "ray_tune_config"))
        run = RunSettings.from_any(
            pick(run_config, ray_run_config, "run_config", "ray_run_config"))
        space = pick(search_space, ray_search_space, "search_space", "ray_search_space") or {}
        torch = TorchSettings.from_any(ray_torch_config)
        if ray_data_config is not None:
            log.info("RayTorchTrainer: ray_data_config has no effect: datasets reach the "
                     "workers through Ray's object store (not Ray Data).")
        init = dict(ray_init or {})
        for key in init:
            if key not in RAY_INIT_KEYS:
                raise ConfigurationError(
                    f"Unknown key '{key}' in ray_init. Accepted keys: {', '.join(RAY_INIT_KEYS)}."
                )
        return cls(scaling=scaling, tune=tune, run=run, search_space=space, torch=torch,
                   ray_init=init, requested=requested)

    # ------------------------------------------------------------------ preparation
    def plan(self, target: TorchTrainer, not_tunable: Iterable[str]) -> Plan:
        """Validate and build everything that does not need a cluster. Raises on bad input.

        ``not_tunable``: argument names that are objects or run settings (refused as keys).
        """
        not_tunable = set(not_tunable)
        space = search_space.build_search_space(self.search_space)
        in_config, as_attr = config_keys(target), attribute_keys(target)
        plumbing = sorted(set(space) & not_tunable)
        if plumbing:
            raise ConfigurationError(
                f"Search-space key {plumbing[0]!r} is an argument of {type(target).__name__} "
                f"that cannot be tuned (objects and run settings: {', '.join(sorted(not_tunable))}"
                f"). Remove it from the search space.")
        for line in search_space.new_config_keys(space, in_config | as_attr,
                                                 type(target).__name__):
            log.warning("%s", line)
        check_values(target, space)
        name = self.run.name or f"{type(target).__name__}_{time.strftime('%Y%m%d-%H%M%S')}"
        if not self.run.resume:  # never into an earlier run's directory
            name = new_experiment_name(self.run.resolved_storage_path(), name)
        return plan_search(space, self.tune, name=name, max_epochs=target.epochs,
                           who="RayTorchTrainer")

    # ------------------------------------------------------------------ the experiment
    def execute(self, target: TorchTrainer, datasets: tuple[Any, Any, Any],
                not_tunable: Iterable[str]) -> HPOResults:
        """Plan, then run one trial per sampled configuration; each worker of each trial runs
        ``target``'s lifecycle. ``target`` is what the workers receive: give it without this
        object."""
        plan = self.plan(target, not_tunable)
        worker_fn = functools.partial(
            run_trainer_in_worker, trainer=target, datasets=datasets,
            checkpoint_frequency=self.run.checkpoint_frequency)
        self._save_pipeline_source(plan.name)
        self.results = run_hpo(worker_fn, plan, scaling=self.scaling, tune=self.tune,
                               run=self.run, ray_init=self.ray_init, torch=self.torch)
        return self.results

    def _save_pipeline_source(self, name: str) -> None:
        if self.pipeline_source is None or (self.run.resume and not self.run.name):
            return  # (a resumed run without a name finds its directory later)
        from ..report.loading import save_pipeline_source
        from ..tuning.storage import check_storage

        check_storage(self.run.resolved_storage_path(), self.run.min_free_disk_gb)

        config, pipe_key = self.pipeline_source
        save_pipeline_source(Path(self.run.resolved_storage_path()) / name, config, pipe_key)


def check_values(target: TorchTrainer, space: dict[str, Any]) -> None:
    """Every value the space can give must make a valid config (each category and grid value,
    numeric bounds, no float domain for an integer), and built-in names must exist."""
    check_space_values(target, space, apply_trial_values)
    probe = copy.copy(target)
    for key in ("optimizer", "loss", "lr_scheduler"):
        domain = space.get(key)
        values = getattr(domain, "categories", None) or (
            domain.get("grid_search") if isinstance(domain, dict) else None) or []
        for value in values:
            cfg = probe.config.model_copy(update={key: value})
            factories.validate_names(cfg, target.epochs)
