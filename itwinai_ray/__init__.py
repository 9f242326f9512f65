"""itwinai-ray: hyperparameter optimisation of PyTorch training pipelines on Ray.

Public names are imported lazily (PEP 562), so ``import itwinai_ray`` is cheap and never
imports torch, ray, deepspeed or horovod until a name that needs them is used.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from . import _trial_session

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # components and pipeline
    "BaseComponent": "itwinai_ray.components",
    "DataGetter": "itwinai_ray.components",
    "DataSplitter": "itwinai_ray.components",
    "DataProcessor": "itwinai_ray.components",
    "Trainer": "itwinai_ray.components",
    "Saver": "itwinai_ray.components",
    "Adapter": "itwinai_ray.components",
    "Pipeline": "itwinai_ray.pipeline",
    # configuration
    "TrainingConfiguration": "itwinai_ray.config.training",
    "load_pipeline": "itwinai_ray.config",
    "load_config": "itwinai_ray.config",
    "instantiate": "itwinai_ray.config",
    # training
    "TorchTrainer": "itwinai_ray.trainer.torch_trainer",
    "RayTorchTrainer": "itwinai_ray.integrations.ray_trainer",
    "HPOResults": "itwinai_ray.tuning.results",
    "tune_pipeline": "itwinai_ray.tuning.pipeline_hpo",
    # errors
    "ItwinaiRayError": "itwinai_ray.errors",
    "ConfigurationError": "itwinai_ray.errors",
    "PipelineError": "itwinai_ray.errors",
    "StrategyError": "itwinai_ray.errors",
    "SearchSpaceError": "itwinai_ray.errors",
    "ResourceError": "itwinai_ray.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def _attach_to_ray_tune_session(trainer: Any) -> bool:
    """The Ray backend's trial-session attacher, imported only once Ray is (a Tune trial)."""
    if "ray" not in sys.modules:  # no Ray imported: certainly not in a Tune trial
        return False
    from .backends.ray.session import attach_to_tune_session

    return attach_to_tune_session(trainer)


# The package root wires the backend into the trainer layer's seam (see _trial_session).
_trial_session.register(_attach_to_ray_tune_session)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'itwinai_ray' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
