"""Reports of HPO experiments read from their directory: table, formats, best config, plots.

Used by ``itwinai-ray results`` and ``itwinai-ray mlflow-ui``; nothing here imports Ray.
"""

from .loading import Experiment, is_experiment_dir, load_experiment

__all__ = ["Experiment", "is_experiment_dir", "load_experiment"]
