"""Trials as Optuna sees them: objectives with their values, and params (no Ray here).

:class:`Objectives` turns a trial's reports into the values of its Optuna trial (the
experiment's scope of each metric) and the study's directions.

Optuna keeps each param as an internal number plus the distribution it came from, and a
study's trials must agree on each param's distribution kind (float/int/categorical, log or
not) and on a categorical's choices. Tune's values do not always fit the space they were
declared in (PBT perturbs past the bounds, ``randn`` has none, grid values may be lists), so
:func:`param_entry` widens a numeric distribution to hold its value and
:func:`plain_choice` turns what a journal cannot store (lists, dicts, numpy scalars) into
plain JSON values. :func:`infer_distributions` guesses distributions from values alone, for
experiments that did not save theirs (``itwinai-ray results --journal`` on older runs).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from .scope import Scope, score_values

logger = logging.getLogger(__name__)

_PLAIN = (type(None), bool, int, float, str)
_DIRECTIONS = {"min": "minimize", "max": "maximize"}


@dataclass(frozen=True)
class Objectives:
    """What the study optimises: metrics, one mode each, and the scope that scores them."""

    metrics: tuple[str, ...]
    modes: tuple[str, ...]
    scope: Scope = Scope()

    @classmethod
    def build(cls, metric: str | Sequence[str], mode: str | Sequence[str],
              scope: Any = None) -> Objectives:
        metrics = (metric,) if isinstance(metric, str) else tuple(metric)
        modes = (mode,) * len(metrics) if isinstance(mode, str) else tuple(mode)
        if not metrics or len(modes) != len(metrics) or any(m not in _DIRECTIONS for m in modes):
            raise ConfigurationError(f"mode is {mode!r}, but must be 'min' or 'max' (one per "
                                     f"metric of {metric!r}).")
        return cls(metrics, modes, Scope.parse(scope))

    @property
    def directions(self) -> list[str]:
        return [_DIRECTIONS[m] for m in self.modes]

    def of(self, result: Mapping[str, Any]) -> dict[str, float]:
        """The finite objective values in one report."""
        out = {}
        for metric in self.metrics:
            try:
                value = float(result.get(metric))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                out[metric] = value
        return out

    def values(self, reports: Mapping[int, Mapping[str, float]]) -> list[float] | None:
        """Each objective's scope value over reports ``{step: values}``; None if one has none."""
        out = []
        for metric, mode in zip(self.metrics, self.modes):
            series = [r[metric] for _, r in sorted(reports.items()) if metric in r]
            value = score_values(series, mode, self.scope)
            if value is None:
                return None
            out.append(value)
        return out


def plain_choice(value: Any) -> Any:
    """``value`` as a JSON scalar Optuna accepts as a categorical choice (others: their repr)."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, _PLAIN):  # numpy scalars
        try:
            value = item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # NaN breaks equality: a choice must find itself
    return value if isinstance(value, _PLAIN) else repr(value)


def to_distribution(spec: Any) -> Any:
    """An Optuna distribution from itself or its JSON form (``distribution_to_json``)."""
    from optuna.distributions import BaseDistribution, json_to_distribution

    if isinstance(spec, BaseDistribution):
        return spec
    return json_to_distribution(spec if isinstance(spec, str) else json.dumps(spec))


def to_json(dist: Any) -> dict[str, Any]:
    """The JSON form of a distribution, for ``itwinai_ray.json``."""
    from optuna.distributions import distribution_to_json

    return json.loads(distribution_to_json(dist))


def categorical(choices: Iterable[Any]) -> Any:
    """A categorical distribution of plain, distinct choices (first occurrence kept)."""
    from optuna.distributions import CategoricalDistribution

    seen: list[Any] = []
    for choice in map(plain_choice, choices):
        if not any(choice == s and type(choice) is type(s) for s in seen):
            seen.append(choice)
    return CategoricalDistribution(seen)


def _widened(dist: Any, value: float) -> Any:
    """``dist`` with bounds stretched to ``value`` (Optuna only compares kind and log)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    low, high = min(dist.low, value), max(dist.high, value)
    if isinstance(dist, IntDistribution):
        step = dist.step if (value - dist.low) % dist.step == 0 else 1
        if (high - low) % step:
            step = 1
        return IntDistribution(int(low), int(high), log=dist.log, step=step)
    step = dist.step
    if step is not None and not math.isclose((value - dist.low) / step,
                                             round((value - dist.low) / step), abs_tol=1e-9):
        step = None
    return FloatDistribution(low, high, log=dist.log, step=step)


def param_entry(name: str, value: Any, dist: Any) -> tuple[Any, Any] | None:
    """``(internal value, distribution)`` to store ``value`` under ``dist``, or None (logged)
    when no distribution of that kind holds it (a log scale and a value <= 0, a value that
    is not among a categorical's choices)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        choice = plain_choice(value)
        for index, known in enumerate(dist.choices):
            if known == choice and type(known) is type(choice):
                return index, dist
        logger.warning("Journal: %s=%r is not one of its choices %s; not recorded.",
                       name, value, list(dist.choices))
        return None
    try:
        number = float(plain_choice(value))
    except (TypeError, ValueError):
        logger.warning("Journal: %s=%r is not a number; not recorded.", name, value)
        return None
    if not math.isfinite(number) or (dist.log and number <= 0):
        logger.warning("Journal: %s=%r does not fit %s; not recorded.", name, value, dist)
        return None
    if isinstance(dist, IntDistribution):
        if not number.is_integer():
            logger.warning("Journal: %s=%r is not an integer; not recorded.", name, value)
            return None
        number = int(number)
    if not dist._contains(number):
        dist = _widened(dist, number)
    return number, dist


def compatible(known: Any, dist: Any) -> bool:
    """May ``dist`` join a study where the param already has ``known``? (Optuna's rule)."""
    from optuna.distributions import check_distribution_compatibility

    try:
        check_distribution_compatibility(known, dist)
    except ValueError:
        return False
    return True


def infer_distributions(configs: Iterable[Mapping[str, Any]],
                        keys: Iterable[str]) -> dict[str, Any]:
    """Distributions guessed from the values the trials took: all integers -> int range,
    all numbers -> float range, anything else -> categorical. A key with one value only is a
    constant, not a param, and is left out."""
    from optuna.distributions import FloatDistribution, IntDistribution

    configs = list(configs)
    out: dict[str, Any] = {}
    for key in keys:
        values = [plain_choice(c[key]) for c in configs if key in c]
        if len({json.dumps(v, sort_keys=True, default=repr) for v in values}) < 2:
            continue
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) < len(values) or not all(math.isfinite(v) for v in numbers):
            out[key] = categorical(values)
        elif all(isinstance(v, int) for v in numbers):
            out[key] = IntDistribution(min(numbers), max(numbers))
        else:
            out[key] = FloatDistribution(min(numbers), max(numbers))
    return out
