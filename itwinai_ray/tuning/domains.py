"""Neutral search-space domains: what :mod:`.search_space` parses the YAML into.

Plain frozen dataclasses, no Ray: a backend turns them into its own objects when it assembles
the experiment (the Ray backend: ``backends/ray/translate.py``). Their fields follow Ray
Tune's model, so a search space means the same on both sides:

- :class:`Choice`: ``choice``;
- :class:`Float`: ``uniform``, ``quniform``, ``loguniform``, ``qloguniform``, ``randn``,
  ``qrandn`` (a normal one has infinite bounds);
- :class:`Integer`: ``randint``, ``qrandint``, ``lograndint``, ``qlograndint``; ``upper`` is
  exclusive unless quantized with ``q > 1``;
- :class:`SampleFrom`: a function of the trial's config (built in Python only);
- ``{"grid_search": [...]}``: a plain dict, every value is tried (see :func:`is_grid`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

UNIFORM, LOGUNIFORM, NORMAL = "uniform", "loguniform", "normal"


def _fmt(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else repr(x)


def _quantize(value: float, q: float | None) -> float:
    return value if q is None else round(value / q) * q


@dataclass(frozen=True)
class Choice:
    """One of ``categories``, drawn uniformly."""

    categories: tuple[Any, ...]

    @property
    def kind(self) -> str:
        return "choice"

    def describe(self) -> str:
        return f"choice({list(self.categories)!r})"

    def sample(self) -> Any:
        return random.choice(self.categories)


@dataclass(frozen=True)
class Float:
    """A float between ``lower`` and ``upper`` (``sampler``: uniform, loguniform or normal,
    with ``mean`` and ``sd``), rounded to a multiple of ``q`` when given."""

    lower: float
    upper: float
    sampler: str = UNIFORM
    q: float | None = None
    mean: float = 0.0
    sd: float = 1.0

    @property
    def kind(self) -> str:
        name = {UNIFORM: "uniform", LOGUNIFORM: "loguniform", NORMAL: "randn"}[self.sampler]
        return name if self.q is None else "q" + name

    @property
    def args(self) -> tuple[Any, ...]:
        """The arguments of the YAML type, in its order (``randn``: mean, sd)."""
        args = (self.mean, self.sd) if self.sampler == NORMAL else (self.lower, self.upper)
        return args if self.q is None else (*args, self.q)

    def describe(self) -> str:
        return f"{self.kind}({', '.join(_fmt(a) for a in self.args)})"

    def sample(self) -> float:
        if self.sampler == NORMAL:
            value = random.gauss(self.mean, self.sd)
        elif self.sampler == LOGUNIFORM:
            value = math.exp(random.uniform(math.log(self.lower), math.log(self.upper)))
        else:
            value = random.uniform(self.lower, self.upper)
        return float(_quantize(value, self.q))


@dataclass(frozen=True)
class Integer:
    """An integer from ``lower`` to ``upper`` (exclusive unless ``q > 1``), uniform or
    log-uniform, a multiple of ``q`` when given."""

    lower: int
    upper: int
    sampler: str = UNIFORM
    q: int | None = None

    @property
    def kind(self) -> str:
        name = "lograndint" if self.sampler == LOGUNIFORM else "randint"
        return name if self.q is None else "q" + name

    @property
    def args(self) -> tuple[Any, ...]:
        return (self.lower, self.upper) if self.q is None else (self.lower, self.upper, self.q)

    def describe(self) -> str:
        return f"{self.kind}({', '.join(_fmt(a) for a in self.args)})"

    def sample(self) -> int:
        q = self.q or 1
        values = range(math.ceil(self.lower / q) * q, self.upper + (q > 1), q)
        return random.choice(values) if values else self.lower


@dataclass(frozen=True)
class SampleFrom:
    """A value computed by ``func(config)`` for each trial (Python API only)."""

    func: Callable[..., Any]

    @property
    def kind(self) -> str:
        return "sample_from"

    def describe(self) -> str:
        return "sample_from(<function>)"


Domain = Choice | Float | Integer | SampleFrom
DOMAINS = (Choice, Float, Integer, SampleFrom)


def is_domain(value: Any) -> bool:
    """Whether ``value`` is a neutral domain (a sampled value)."""
    return isinstance(value, DOMAINS)


def is_grid(value: Any) -> bool:
    """Whether ``value`` is a ``{"grid_search": [...]}`` dict."""
    return isinstance(value, Mapping) and set(value) == {"grid_search"}


def float_bounds(space: Mapping[str, Any]) -> dict[str, list[float]]:
    """``[lower, upper]`` of every :class:`Float` of a space (infinite for a normal one)."""
    return {k: [float(d.lower), float(d.upper)] for k, d in space.items()
            if isinstance(d, Float)}


def int_bounds(space: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """``(lower, upper - 1)`` of every :class:`Integer` of a space."""
    return {k: (d.lower, d.upper - 1) for k, d in space.items() if isinstance(d, Integer)}


__all__ = ["DOMAINS", "Choice", "Domain", "Float", "Integer", "SampleFrom", "float_bounds",
           "int_bounds", "is_domain", "is_grid"]
