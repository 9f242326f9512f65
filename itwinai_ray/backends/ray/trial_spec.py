"""What every trial process and worker of an experiment gets: :class:`_TrialSpec`, and the
two things both trial paths do with it (capture output, unpickle ``worker_fn``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from itwinai_ray.backends.ray import output


@dataclass(frozen=True)
class _TrialSpec:
    """Everything a trial needs besides its sampled config.

    ``worker_fn`` (which may hold the trainer and its datasets) is a Ray ``ObjectRef``: it is
    put in the object store once per experiment and only the processes that run it fetch it.
    """

    worker_fn_ref: Any
    num_workers: int
    use_gpu: bool
    resources_per_worker: dict[str, float]
    train_storage_path: str
    trial_config_base: dict[str, Any]
    train_checkpoints_to_keep: int | None
    registry: tuple[str, str | None] | None = None  # (actor name, namespace)
    #: The tuned metrics: a report without them fails the trial with a clear message.
    required_metrics: tuple[str, ...] = ()
    #: Train restarts of the worker group (from its last checkpoint) before the trial fails.
    worker_max_failures: int = 0
    #: The driver serves ``itwinai.*`` from itwinai_ray (itwinai not installed): so do workers.
    itwinai_aliases: bool = False
    #: ``ray.train.torch.TorchConfig`` arguments (process-group ``backend``, ``timeout_s``).
    torch_config: dict[str, Any] = field(default_factory=dict)
    #: Each trial process and Train worker writes its output to log files in the trial
    #: directory (:mod:`.output`), not to the driver's terminal.
    capture_output: bool = False
    #: ``walltime.json`` of an experiment with a stop signal due
    #: (:mod:`itwinai_ray.tuning.walltime`), or None.
    walltime_path: str | None = None
    #: Worker-group trials run on this trial process's reusable workers (:mod:`.pool`)
    #: instead of a Train V2 run: ``tune_config.reuse_actors: true``.
    pooled: bool = False


def _captured(spec: _TrialSpec, path: str) -> Any:
    return output.capture_fds(path) if spec.capture_output else contextlib.nullcontext()


def _worker_fn(spec: _TrialSpec) -> Any:
    """The experiment's worker_fn, unpickled here (with the driver's itwinai aliases)."""
    import ray

    if spec.itwinai_aliases:  # user modules that import itwinai.* unpickle as on the driver
        from itwinai_ray import itwinai_compat

        itwinai_compat.install()
    return ray.get(spec.worker_fn_ref)
