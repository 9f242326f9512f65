"""Horovod strategy: configurable now, runnable in a later release."""

from __future__ import annotations

from typing import Any, ClassVar

from itwinai_ray.distributed.base import PlannedStrategy


class HorovodStrategy(PlannedStrategy):
    """``strategy: horovod``. Stores its settings; :meth:`init` raises until implemented.

    Args:
        fp16_allreduce: compress gradients to fp16 for the allreduce.
        op: reduction of gradients ("average", "sum" or "adasum").
        **kwargs: further settings, kept for the implementation to come.
    """

    name: ClassVar[str] = "horovod"

    def __init__(self, fp16_allreduce: bool = False, op: str = "average", **kwargs: Any) -> None:
        super().__init__(fp16_allreduce=fp16_allreduce, op=op, **kwargs)
