"""The HPO core: search spaces, algorithm tables, settings, the plan, the worker side, results.

No module here imports Ray. Everything that talks to Ray Train/Tune lives in
:mod:`itwinai_ray.backends.ray`: the core hands it a validated plan (``experiment.run_hpo``),
and asks its :mod:`~itwinai_ray.backends.ray.translate` module for the ``ray.tune`` domains,
searchers and schedulers that a plan holds.
"""

from .results import HPOResults, TrialRow
from .settings import RunSettings, ScalingSettings, TuneSettings

__all__ = ["HPOResults", "RunSettings", "ScalingSettings", "TrialRow", "TuneSettings"]
