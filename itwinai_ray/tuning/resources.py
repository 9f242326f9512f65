"""Resource arithmetic for HPO trials: pure functions, no Ray import.

Ray Tune does not know that each trial starts a Ray Train worker group in its own placement
group, so it would happily start more trials than the cluster can feed; the extra trials then
wait (forever, by default) for their workers. These functions compute what one trial really
needs, reject a trial that can never fit, and derive how many trials may run at once.

Resource names follow Ray: ``"CPU"``, ``"GPU"``, ``"memory"`` and custom names. ``"cpu"`` and
``"gpu"`` are accepted and upper-cased.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from itwinai_ray.errors import ConfigurationError, ResourceError

logger = logging.getLogger(__name__)

#: CPU fraction asked by the Tune trial itself when it only drives a Train worker group.
#: Ray Tune refuses 0 (``ValueError``), so a small fraction is used.
DEFAULT_TRIAL_OVERHEAD_CPU = 0.01

_EPS = 1e-9


def normalize_resources(
    resources_per_worker: Mapping[str, float] | None, use_gpu: bool
) -> dict[str, float]:
    """Return one worker's resources with Ray's names, defaulting to 1 CPU (+1 GPU).

    Args:
        resources_per_worker: e.g. ``{"CPU": 2, "GPU": 1}``; ``None`` means 1 CPU.
        use_gpu: when true and no GPU count is given, each worker gets 1 GPU.

    Raises:
        ConfigurationError: on a negative amount, or ``use_gpu=False`` with a GPU count > 0.
    """
    out: dict[str, float] = {}
    for key, value in (resources_per_worker or {}).items():
        name = key.upper() if key.lower() in ("cpu", "gpu") else key
        amount = float(value)
        if amount < 0:
            raise ConfigurationError(
                f"resources_per_worker[{key!r}] is {value}, but must be >= 0."
            )
        out[name] = out.get(name, 0.0) + amount
    if "CPU" not in out:
        out["CPU"] = 1.0
    if use_gpu and out.get("GPU", 0.0) <= 0:
        out["GPU"] = 1.0
    if not use_gpu and out.get("GPU", 0.0) > 0:
        raise ConfigurationError(
            f"resources_per_worker asks for {out['GPU']:g} GPU but use_gpu is False. "
            "Set scaling_config.use_gpu=True or remove 'GPU' from resources_per_worker."
        )
    return {k: v for k, v in out.items() if v > 0}


def trial_need(
    num_workers: int,
    resources_per_worker: Mapping[str, float] | None,
    use_gpu: bool,
    trial_overhead_cpu: float = DEFAULT_TRIAL_OVERHEAD_CPU,
) -> dict[str, float]:
    """Total resources held by one running trial.

    With ``num_workers >= 2`` the trial is a small driver (``trial_overhead_cpu``) plus a
    worker group of ``num_workers`` bundles. With ``num_workers == 1`` the backend runs the
    worker inside the trial itself (fast path), so the need is one worker and no overhead.

    Raises:
        ConfigurationError: when ``num_workers < 1`` or ``trial_overhead_cpu <= 0``.
    """
    if num_workers < 1:
        raise ConfigurationError(f"num_workers is {num_workers}, but must be >= 1.")
    per_worker = normalize_resources(resources_per_worker, use_gpu)
    if num_workers == 1:
        return dict(per_worker)
    if trial_overhead_cpu <= 0:
        raise ConfigurationError(
            f"trial_overhead_cpu is {trial_overhead_cpu}, but must be > 0 "
            "(Ray Tune refuses a trial with 0 CPU)."
        )
    need = {k: v * num_workers for k, v in per_worker.items()}
    need["CPU"] = need.get("CPU", 0.0) + trial_overhead_cpu
    return need


def _explain(name: str, need: float, num_workers: int | None,
             per_worker: Mapping[str, float] | None, overhead: float) -> str:
    if num_workers is None or per_worker is None:
        return f"{need:g} {name}"
    each = per_worker.get(name, 0.0)
    if num_workers == 1:
        return f"{need:g} {name} (1 worker x {each:g} {name}, run inside the trial)"
    extra = f" + {overhead:g} for the trial driver" if name == "CPU" and overhead else ""
    return f"{need:g} {name} ({num_workers} workers x {each:g} {name}{extra})"


def check_feasible(
    need_per_trial: Mapping[str, float],
    capacity: Mapping[str, float],
    *,
    num_workers: int | None = None,
    resources_per_worker: Mapping[str, float] | None = None,
    trial_overhead_cpu: float = DEFAULT_TRIAL_OVERHEAD_CPU,
) -> None:
    """Raise :class:`ResourceError` when one trial can never fit the cluster.

    Args:
        need_per_trial: output of :func:`trial_need`.
        capacity: total cluster resources (``ray.cluster_resources()``).
        num_workers, resources_per_worker, trial_overhead_cpu: optional, only used to explain
            how the need was computed in the error message.

    Raises:
        ResourceError: naming the per-trial need, the capacity and how to fix it.
    """
    per_worker = (
        normalize_resources(resources_per_worker, use_gpu=need_per_trial.get("GPU", 0) > 0)
        if num_workers is not None else None
    )
    problems = []
    missing = []
    for name, need in need_per_trial.items():
        have = float(capacity.get(name, 0.0))
        if need > have + _EPS:
            missing.append(name)
            problems.append(
                f"One trial needs {_explain(name, need, num_workers, per_worker, trial_overhead_cpu)}"
                f" but the cluster has {have:g} {name}."
            )
    if problems:
        where = " with " + ", ".join(missing) if set(missing) - {"CPU"} else ""
        raise ResourceError(
            " ".join(problems) + " Lower scaling_config.num_workers or resources_per_worker, "
            f"or add nodes{where}."
        )


def check_worker_fits_a_node(
    resources_per_worker: Mapping[str, float], nodes: list[Mapping[str, float]]
) -> None:
    """Raise :class:`ResourceError` when no single node can host one worker.

    A worker's bundle cannot be split across nodes, so a 4-CPU worker never starts on a
    cluster of 2-CPU nodes even though the cluster has 8 CPUs in total.
    """
    if not nodes:
        return
    for node in nodes:
        if all(float(node.get(k, 0.0)) + _EPS >= v for k, v in resources_per_worker.items()):
            return
    largest = max(nodes, key=lambda n: float(n.get("CPU", 0.0)))
    wanted = ", ".join(f"{v:g} {k}" for k, v in resources_per_worker.items())
    biggest = ", ".join(f"{float(largest.get(k, 0.0)):g} {k}" for k in resources_per_worker)
    raise ResourceError(
        f"One worker needs {wanted} on a single node, but the largest node has {biggest}. "
        "Lower resources_per_worker (use more workers instead) or add bigger nodes."
    )


def max_concurrent_trials(
    need: Mapping[str, float],
    capacity: Mapping[str, float],
    user_value: int | None = None,
) -> int:
    """How many trials fit the cluster at once: ``floor(capacity / need)``, minimum over resources.

    A ``user_value`` above that number is capped (with a warning), because the extra trials
    would only start and then wait for workers that cannot be placed. A smaller positive
    ``user_value`` is kept. ``user_value <= 0`` means "no preference".

    Raises:
        ResourceError: when not even one trial fits (see :func:`check_feasible`).
    """
    check_feasible(need, capacity)
    fits = math.inf
    for name, amount in need.items():
        if amount > 0:
            fits = min(fits, math.floor(float(capacity.get(name, 0.0)) / amount + _EPS))
    computed = 1 if fits is math.inf else max(1, int(fits))
    if user_value is None or user_value <= 0:
        return computed
    if user_value > computed:
        logger.warning(
            "max_concurrent_trials=%d is more than the cluster can run at once (%d: one trial "
            "needs %s, the cluster has %s); using %d.",
            user_value, computed, _fmt(need), _fmt(capacity, need), computed,
        )
        return computed
    return int(user_value)


def _fmt(res: Mapping[str, float], keys: Mapping[str, float] | None = None) -> str:
    names = keys if keys is not None else res
    return ", ".join(f"{float(res.get(k, 0.0)):g} {k}" for k in names)


def local_ray_hint(ray_init: Mapping[str, Any],
                   need_per_trial: Mapping[str, float]) -> str | None:
    """For a local Ray this run started: the ``ray_init`` setting that would let one trial
    fit (its ``num_cpus``/``num_gpus`` were set too low), or None."""
    fixes = []
    for key, name in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        given, need = ray_init.get(key), float(need_per_trial.get(name, 0.0))
        if given is not None and need > float(given) + _EPS:
            fixes.append(f"{key}: {math.ceil(need - _EPS)}")
    if not fixes:
        return None
    return (f"This run started a local Ray with ray_init {dict(ray_init)}: set ray_init: "
            f"{{{', '.join(fixes)}}} (or more) so that one trial fits.")


def size_local_ray(ray_init: Mapping[str, Any], need_per_trial: Mapping[str, float],
                   cpu_count: int | None) -> tuple[dict[str, Any], str | None]:
    """``ray_init`` for a local Ray that this run starts, sized so that one trial fits.

    Only when no cluster is named (``address``, ``$RAY_ADDRESS``) and ``num_cpus`` is unset:
    if one trial needs more CPUs than the machine has cores (2 workers x 1 CPU + the trial
    driver's 0.01 on a 2-core laptop), the local Ray gets that many logical CPUs, at least
    one trial at a time. Returns the settings and the line to tell the user (or None).
    """
    out = dict(ray_init)
    if out.get("address") or os.environ.get("RAY_ADDRESS") or out.get("num_cpus") is not None:
        return out, None
    need = float(need_per_trial.get("CPU", 0.0))
    cores = cpu_count or 1
    if need <= cores + _EPS:
        return out, None
    out["num_cpus"] = math.ceil(need - _EPS)
    return out, (f"Local Ray: {out['num_cpus']} logical CPUs on this {cores}-core machine, so "
                 f"that one trial ({need:g} CPU) fits; set ray_init: {{num_cpus: N}} to choose.")
