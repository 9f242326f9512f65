"""itwinai 0.4 helper functions and decorators that user code imports, with their meaning here.

The profiling and GPU-monitoring decorators run the method unchanged: itwinai-ray has no
profiler or GPU sampler of its own (docs/itwinai-compat.md says what to use instead).
"""

from __future__ import annotations

import builtins
import functools
import os
import random
from collections.abc import Callable
from typing import Any

import torch

#: itwinai.torch.type names.
Batch = torch.Tensor
Metric = Callable[..., Any]


def set_seed(rnd_seed: int | None, deterministic_cudnn: bool = True) -> torch.Generator:
    """Seed random, numpy and torch; return a torch generator seeded the same (or unseeded)."""
    import numpy as np

    generator = torch.Generator()
    if rnd_seed is None:
        return generator
    random.seed(rnd_seed)
    np.random.seed(rnd_seed)
    torch.manual_seed(rnd_seed)
    generator.manual_seed(rnd_seed)
    if deterministic_cudnn:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return generator


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=seed_worker)``: numpy and random follow torch's seed."""
    import numpy as np

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def distributed_resources_available() -> bool:
    """Whether this job has several processes (a launcher) or several GPUs."""
    from ..distributed.ddp import launched_with_several_processes

    return launched_with_several_processes() or (
        torch.cuda.is_available() and torch.cuda.device_count() > 1)


def profile_torch_trainer(method: Callable[..., Any]) -> Callable[..., Any]:
    """itwinai's torch-profiler decorator: runs ``method`` unchanged here."""
    return method


def measure_gpu_utilization(method: Callable[..., Any]) -> Callable[..., Any]:
    """itwinai's GPU-sampling decorator: runs ``method`` unchanged here."""
    return method


def _global_rank() -> int:
    for key in ("RANK", "SLURM_PROCID", "HOROVOD_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def suppress_workers_print(func: Callable[..., Any]) -> Callable[..., Any]:
    """Silence ``print`` on every rank but 0 while ``func`` runs (``print(..., force=True)``
    still prints), as itwinai's decorator does."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        original = builtins.print
        main = _global_rank() == 0

        def gated(*values: Any, force: bool = False, **print_kwargs: Any) -> None:
            if main or force:
                original(*values, **print_kwargs)

        builtins.print = gated
        try:
            return func(*args, **kwargs)
        finally:
            builtins.print = original

    return wrapper
