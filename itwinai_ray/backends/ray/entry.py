"""The Ray backend's entry point from the HPO core (``tuning/backend.py`` calls only this
module): connect to Ray, run one experiment, stop; and what the core asks before Ray starts.

:func:`~itwinai_ray.tuning.experiment.run_hpo` hands over one
:class:`~itwinai_ray.tuning.experiment_spec.ExperimentSpec` with neutral specs (search space,
searcher, scheduler), which the driver translates (:mod:`.translate`, :mod:`.algorithms`);
what Ray needs around it (a local instance, Ray's output in log files, the signal handlers,
the shutdown) happens here. Before that, the core asks this module to check a domain or a
searcher/scheduler (built once and dropped), to read a ``ray.tune`` domain built in Python,
and which experiment ``--resume`` continues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from typing import Any

from itwinai_ray.backends.ray import driver, output, translate
from itwinai_ray.backends.ray.algorithms import check as check_algorithm
from itwinai_ray.backends.ray.algorithms import table_row
from itwinai_ray.backends.ray.restore import experiment_to_resume
from itwinai_ray.errors import ResourceError
from itwinai_ray.tuning import interrupts
from itwinai_ray.tuning import resources as res
from itwinai_ray.tuning.domains import Domain
from itwinai_ray.tuning.experiment_spec import ExperimentSpec

__all__ = ["check_algorithm", "check_domain", "experiment_to_resume", "neutral_domain",
           "run_with_ray", "table_row"]


def neutral_domain(value: Any) -> Domain | None:
    """The neutral domain of a ``ray.tune`` domain built in Python; None for other values."""
    return translate.to_neutral(value)


def check_domain(domain: Domain) -> None:
    """Raise ValueError or AssertionError where Ray refuses ``domain`` (e.g. a bound that is
    not exactly a multiple of q)."""
    translate.to_ray(domain)


def run_with_ray(spec: ExperimentSpec, ray_init: dict[str, Any]) -> Any:
    """Connect to Ray (starting a local one if needed), run ``spec``, stop the Ray it started.

    With ``spec.verbose == 0`` Ray's output goes to log files in the experiment directory
    (see :mod:`.output`) and the progress view to the terminal.
    """
    experiment_dir = os.path.join(spec.storage_path, spec.name)
    quiet = spec.verbose == 0
    with output.quiet_driver(output.driver_log_path(experiment_dir)) if quiet \
            else contextlib.nullcontext(sys.stdout) as terminal, interrupts.stop_on_signals():
        return _run(dataclasses.replace(spec, terminal=terminal), ray_init, quiet,
                    experiment_dir)


def _run(spec: ExperimentSpec, ray_init: dict[str, Any], quiet: bool,
         experiment_dir: str) -> Any:
    started = driver.ensure_ray(**ray_init, log_to_driver=not quiet)
    interrupts.rearm()
    try:
        return driver.run(spec)
    except ResourceError as exc:
        hint = res.local_ray_hint(ray_init, res.trial_need(
            spec.num_workers, spec.resources_per_worker, spec.use_gpu)) if started else None
        if hint is None:
            raise
        raise ResourceError(f"{exc} {hint}") from exc
    finally:
        if started:
            driver.shutdown(keep_logs_in=experiment_dir if quiet else None)
