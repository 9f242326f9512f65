"""Integration 1, the run_trial path: tune an existing pipeline without touching its code.

Each trial composes the pipeline's YAML with the trial's sampled values, as dotted overrides
into any part of the file (a top-level variable such as ``optim_lr``, or a full path like
``training_pipeline.init_args.steps.2.init_args.config.optim_lr``), builds the pipeline and
executes it in the trial process. Trials are not distributed. The pipeline's TorchTrainer
reports its epoch metrics (and a checkpoint) to Tune by itself, as it does whenever it runs
inside a Tune trial.

Searchers, schedulers, the Ray backend and the results are RayTorchTrainer's
(:mod:`itwinai_ray.tuning.experiment`). Everything is checked before Ray starts: each search
key must be a path of the config (else the closest paths are named), and one sampled
configuration must build.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.loader import DEFAULT_PIPE_KEY, StepsSpec, build_pipeline, find_pipe_key, load_yaml
from ..config.overrides import apply_overrides, apply_values, value_paths
from ..errors import ConfigurationError, ItwinaiRayError
from . import search_space as ss
from .experiment import Plan, plan_search, run_hpo
from .results import HPOResults, write_yaml
from .settings import RunSettings, ScalingSettings, TuneSettings

log = logging.getLogger(__name__)

#: Sections of a search-space file besides ``search_space`` (see :func:`read_hpo_file`).
HPO_FILE_SECTIONS = ("search_space", "tune_config", "run_config", "resources_per_trial",
                     "ray_init")


@dataclass(frozen=True)
class PipelineTrial:
    """``worker_fn`` of one run_trial trial: build the pipeline with the trial's values, run it."""

    raw_config: dict[str, Any]
    pipe_key: str
    steps: StepsSpec
    source: str
    checkpoint_frequency: int = 1

    def __call__(self, values: dict[str, Any], ctx: Any) -> None:
        from .trial import attach_to_trial

        pipeline = build_pipeline(apply_values(self.raw_config, values), self.pipe_key,
                                  steps=self.steps, source=self.source)
        attach_to_trial(the_trainer(pipeline, self.pipe_key), ctx, self.checkpoint_frequency)
        if ctx.is_main:
            log.info("Trial %s: %s", ctx.trial_id, values)
        pipeline.execute()


def the_trainer(pipeline: Any, pipe_key: str) -> Any:
    """The one TorchTrainer step of ``pipeline`` (the one that reports to Tune)."""
    from ..integrations.steps import find_hpo_step
    from ..trainer.torch_trainer import TorchTrainer

    steps = list(getattr(pipeline, "steps", []) or [])
    steps = list(steps.values()) if isinstance(steps, Mapping) else steps
    if find_hpo_step(steps) is not None:
        raise ConfigurationError(
            f"Pipeline '{pipe_key}' already tunes itself with a RayTorchTrainer step: run it "
            f"with 'itwinai-ray exec-pipeline', or use its plain TorchTrainer with "
            f"'itwinai-ray tune'.")
    trainers = [s for s in steps if isinstance(s, TorchTrainer)]
    if len(trainers) != 1:
        names = [type(s).__name__ for s in steps]
        raise ConfigurationError(
            f"Pipeline '{pipe_key}' must have exactly one TorchTrainer step to tune (the one "
            f"that reports the metric); it has {len(trainers)} among its steps {names}.")
    return trainers[0]


def _norm(key: str) -> str:
    return re.sub(r"\[(-?\d+)\]", r".\1", str(key))


def check_paths(space: Mapping[str, Any], raw: Mapping[str, Any], source: str) -> None:
    """Every search key must be a path of the config; otherwise name the closest paths."""
    paths = value_paths(raw)
    known = set(paths)
    for key in space:
        if _norm(key) in known:
            continue
        leaf = _norm(key).rsplit(".", 1)[-1]
        close = difflib.get_close_matches(_norm(key), paths, n=3, cutoff=0.5)
        close += [p for p in paths if difflib.get_close_matches(
            leaf, [p.rsplit(".", 1)[-1]], n=1, cutoff=0.75) and p not in close]
        hint = (f" Closest paths: {', '.join(close[:5])}." if close
                else f" Top-level keys: {', '.join(map(str, raw))}.")
        raise ConfigurationError(
            f"Search-space key '{key}' is not a path in {source}.{hint} Keys are dotted "
            f"paths into the config, as for 'exec-pipeline -o' (e.g. a top-level variable "
            f"'optim_lr', or 'training_pipeline.init_args.steps.2.init_args.epochs').")


def _one_sample(space: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, domain in space.items():
        value = domain.sample() if hasattr(domain, "sample") else domain
        if isinstance(value, Mapping) and "grid_search" in value:
            value = value["grid_search"][0]
        out[key] = value
    return out


@dataclass(frozen=True)
class PipelineHPO:
    """A validated run_trial experiment: the worker function and its plan (no Ray yet)."""

    trial: PipelineTrial
    plan: Plan
    raw_config: dict[str, Any]


def plan_pipeline_hpo(raw: dict[str, Any], pipe_key: str, search_space: Mapping[str, Any],
                      tune: TuneSettings, run: RunSettings, steps: StepsSpec = None,
                      source: str = "the configuration") -> PipelineHPO:
    """Validate everything that does not need a cluster and build the plan."""
    find_pipe_key(raw, pipe_key, source=source)
    space = ss.build_search_space(dict(search_space or {}))
    if not space:
        raise ConfigurationError(
            "The search space is empty: give at least one key, e.g. "
            "search_space: {optim_lr: {type: loguniform, lower: 1.0e-4, upper: 1.0e-1}}.")
    check_paths(space, raw, source)
    sample = _one_sample(space)
    try:
        probe = build_pipeline(apply_values(raw, sample), pipe_key, steps=steps, source=source)
    except ItwinaiRayError:
        raise
    except Exception as exc:  # a constructor refused a sampled value: name it
        raise ConfigurationError(
            f"The pipeline does not build with sampled values {sample}: "
            f"{type(exc).__name__}: {exc}".replace("\n", " ")) from None
    trainer = the_trainer(probe, pipe_key)
    name = run.name or f"{pipe_key.replace('.', '_')}_{time.strftime('%Y%m%d-%H%M%S')}"
    plan = plan_search(space, tune, name=name, max_epochs=trainer.epochs, who="tune_pipeline")
    trial = PipelineTrial(raw_config=raw, pipe_key=pipe_key, steps=steps, source=source,
                          checkpoint_frequency=run.checkpoint_frequency)
    return PipelineHPO(trial=trial, plan=plan, raw_config=raw)


def scaling_for(resources_per_trial: Mapping[str, Any] | None) -> ScalingSettings:
    """One worker per trial, with the trial's resources (``cpu``, ``gpu``, custom names)."""
    resources = {str(k): v for k, v in dict(resources_per_trial or {}).items()}
    gpus = float(resources.get("gpu", resources.get("GPU", 0)) or 0)
    return ScalingSettings(num_workers=1, use_gpu=gpus > 0,
                           resources_per_worker=resources or None)


def tune_pipeline(
    config: str | os.PathLike[str] | Mapping[str, Any],
    pipe_key: str = DEFAULT_PIPE_KEY,
    search_space: Mapping[str, Any] | None = None,
    tune_config: Any = None,
    resources_per_trial: Mapping[str, Any] | None = None,
    run_config: Any = None,
    ray_init: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    steps: StepsSpec = None,
) -> HPOResults:
    """Tune an existing pipeline: one trial = the pipeline built with the trial's values.

    Args:
        config: the pipeline YAML file, or its content as a mapping.
        pipe_key: key of the pipeline in the file (dotted allowed).
        search_space: ``{dotted.path: {type: choice|uniform|loguniform|..., ...}}``; each
            path must exist in the config (a top-level variable or a path into a step).
        tune_config: ``num_samples``, ``metric``, ``mode``, ``search_alg``, ``scheduler``,
            ``max_concurrent_trials``, ``time_budget_s`` (as for RayTorchTrainer).
        resources_per_trial: e.g. ``{cpu: 1, gpu: 0}`` (default 1 CPU).
        run_config: ``name``, ``storage_path``, ``checkpoint_frequency``, ... (as for
            RayTorchTrainer). Results go to ``storage_path/name``.
        ray_init: ``num_cpus``/``num_gpus`` of the local Ray started when no cluster is given.
        overrides: ``exec-pipeline``-style overrides applied to the file first.
        steps: run only some steps of the pipeline (as ``exec-pipeline --steps``).

    Returns:
        The ranked results; ``results.json`` and ``best_config.yaml`` (the pipeline file with
        the best trial's values filled in) are written into the experiment directory.
    """
    if isinstance(config, Mapping):
        raw, source = dict(config), "the configuration"
    else:
        raw, source = load_yaml(config), str(config)
    raw = apply_overrides(raw, overrides)
    tune = TuneSettings.from_any(tune_config)
    run = RunSettings.from_any(run_config)
    hpo = plan_pipeline_hpo(raw, pipe_key, search_space or {}, tune, run, steps, source)
    results = run_hpo(hpo.trial, hpo.plan, scaling=scaling_for(resources_per_trial),
                      tune=tune, run=run, ray_init=dict(ray_init or {}))
    written = write_best_pipeline(results, raw)
    if written is not None:
        log.info("Best config: %s", written)
    return results


def write_best_pipeline(results: HPOResults, raw: dict[str, Any],
                        path: str | Path | None = None) -> Path | None:
    """The pipeline file with the best trial's values, ready to run with exec-pipeline."""
    if not any(r.metric is not None for r in results.rows):
        return None
    best = apply_values(raw, results.best_config)
    path = Path(path or Path(results.experiment_path or ".") / "best_config.yaml")
    return write_yaml(best, path)


def read_hpo_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A search-space file: either the search space itself, or sections.

    Sections: ``search_space`` (required), ``tune_config``, ``run_config``,
    ``resources_per_trial``, ``ray_init``.
    """
    data = load_yaml(path)
    if "search_space" not in data:
        return {"search_space": data}
    unknown = [k for k in data if k not in HPO_FILE_SECTIONS]
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown section(s) {unknown}. A search-space file has the sections "
            f"{', '.join(HPO_FILE_SECTIONS)}, or holds only the search space itself.")
    return data
