"""Hyperparameter tuning: search spaces, algorithms, settings, results and the Ray backend.

Only ``ray_backend`` talks to Ray Train/Tune; the other modules are plain Python and import
Ray lazily (search-space domains and algorithm classes) or not at all.
"""

from .results import HPOResults, TrialRow
from .settings import RunSettings, ScalingSettings, TuneSettings

__all__ = ["HPOResults", "RunSettings", "ScalingSettings", "TrialRow", "TuneSettings"]
