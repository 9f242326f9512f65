"""DeepSpeed strategy: configurable now, runnable in a later release."""

from __future__ import annotations

from typing import Any, ClassVar

from itwinai_ray.distributed.base import PlannedStrategy


class DeepSpeedStrategy(PlannedStrategy):
    """``strategy: deepspeed``. Stores its settings; :meth:`init` raises until implemented.

    Args:
        config: a DeepSpeed config dict or the path of a JSON file.
        backend: communication backend ("auto", "nccl", "gloo").
        **kwargs: further settings, kept for the implementation to come.
    """

    name: ClassVar[str] = "deepspeed"

    def __init__(
        self, config: dict[str, Any] | str | None = None, backend: str = "auto", **kwargs: Any
    ) -> None:
        super().__init__(config=config, backend=backend, **kwargs)
