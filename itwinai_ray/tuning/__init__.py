"""The HPO core: search spaces, algorithm tables, settings, the plan, the worker side, results.

No module here imports Ray. Everything that talks to Ray Train/Tune lives in
:mod:`itwinai_ray.backends.ray`. The core produces neutral specs (search-space domains in
:mod:`.domains`, searcher/scheduler choices) and hands the backend a validated plan; the backend
translates them into ``ray.tune`` objects when it assembles the Tuner. Only :mod:`.backend`
calls the backend (``tests/unit/test_architecture.py``).
"""

from .results import HPOResults, TrialRow
from .settings import RunSettings, ScalingSettings, TuneSettings

__all__ = ["HPOResults", "RunSettings", "ScalingSettings", "TrialRow", "TuneSettings"]
