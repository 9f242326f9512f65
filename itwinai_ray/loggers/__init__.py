"""Loggers with the itwinai API: console, MLflow, TensorBoard and a collection of them.

Backends (mlflow, tensorboard, torch) are imported only when a logger context is opened.
"""

from itwinai_ray.loggers.base import VALID_KINDS, Logger
from itwinai_ray.loggers.collection import LoggersCollection
from itwinai_ray.loggers.console import ConsoleLogger
from itwinai_ray.loggers.mlflow import MLFlowLogger
from itwinai_ray.loggers.tensorboard import TensorBoardLogger

__all__ = [
    "VALID_KINDS",
    "ConsoleLogger",
    "Logger",
    "LoggersCollection",
    "MLFlowLogger",
    "TensorBoardLogger",
]
