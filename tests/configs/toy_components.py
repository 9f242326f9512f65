"""Tiny components for the config and CLI tests (no torch, no Ray)."""

from __future__ import annotations

from typing import Any


class ToyPipeline:
    """Chains ``execute`` outputs like the real Pipeline: a tuple is splatted into the next step."""

    def __init__(self, steps: list[Any] | dict[str, Any], name: str | None = None) -> None:
        self.steps = steps
        self.name = name

    def step_list(self) -> list[Any]:
        return list(self.steps.values()) if isinstance(self.steps, dict) else list(self.steps)

    def execute(self, *args: Any) -> Any:
        for step in self.step_list():
            out = step.execute(*args)
            args = out if isinstance(out, tuple) else (out,)
        return args[0] if len(args) == 1 else args


class ToyGetter:
    """Returns ``[0, 1, ..., n-1]`` scaled."""

    def __init__(self, n: int, scale: float = 1.0) -> None:
        self.n = n
        self.scale = scale

    def execute(self) -> list[float]:
        return [i * self.scale for i in range(self.n)]


class ToyDoubler:
    def __init__(self, factor: int = 2) -> None:
        self.factor = factor

    def execute(self, data: list[float]) -> list[float]:
        return [x * self.factor for x in data]


class ToyPrinter:
    def __init__(self, prefix: str = "result", extra: dict[str, Any] | None = None) -> None:
        self.prefix = prefix
        self.extra = extra

    def execute(self, data: Any) -> Any:
        print(f"{self.prefix}: {data}")
        return data


class Failing:
    def __init__(self, value: int = 0) -> None:
        raise ValueError(f"value {value} is not allowed")


class Boom:
    """Fails at execute time (a user-code error: the CLI keeps the traceback)."""

    def execute(self, *args: Any) -> None:
        raise RuntimeError("boom in user code")


def make_config(lr: float, layers: list[int]) -> dict[str, Any]:
    return {"lr": lr, "layers": layers}
