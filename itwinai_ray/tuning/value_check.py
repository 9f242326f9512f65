"""Before Ray starts: every value a search space can give must suit what the trainer reads.

Each category and grid value is merged, one at a time, into a copy of the trainer (pydantic
checks it against the ``TrainingConfiguration`` field); numeric domains are checked at their
bounds, and a float domain (``uniform``, ``loguniform``, ...) for an integer setting is refused
(only whole numbers would pass, by chance). One sample is not enough: a ``choice`` of
``[32.5, 64]`` for ``batch_size`` passed a one-sample check and failed in most trials.
Domains are the neutral ones of :mod:`.domains` (``categories``, ``lower``, ``upper``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigurationError
from .domains import is_domain


def candidate_values(domain: Any) -> list[Any]:
    """The values to try for one domain: all categories or grid values, else the bounds."""
    if isinstance(domain, Mapping) and "grid_search" in domain:
        return list(domain["grid_search"])
    if hasattr(domain, "categories"):
        return list(domain.categories)
    if hasattr(domain, "lower") and hasattr(domain, "upper"):
        upper = domain.upper - 1 if type(domain).__name__ == "Integer" else domain.upper
        return [domain.lower, upper]
    return [] if is_domain(domain) else [domain]


def _is_float_domain(domain: Any) -> bool:
    return type(domain).__name__ == "Float"


def _reads_an_int(trainer: Any, key: str) -> bool:
    field = type(trainer.config).model_fields.get(key)
    if field is not None:
        return field.annotation is int
    current = trainer.config.get(key) if key in trainer.config.known_keys() else getattr(
        trainer, key, None)
    return isinstance(current, int) and not isinstance(current, bool)


def short_reason(exc: Exception) -> str:
    """The meaningful line of an error: pydantic's message, not its 'further information'."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            return f"{first.get('msg', exc)} (input {first.get('input')!r})"
        except (TypeError, IndexError, KeyError):
            pass
    lines = [ln for ln in str(exc).splitlines() if ln.strip()
             and "errors.pydantic.dev" not in ln]
    return lines[-1].strip() if lines else type(exc).__name__


def check_space_values(trainer: Any, space: Mapping[str, Any],
                       apply: Callable[[Any, Mapping[str, Any]], None]) -> None:
    """Raise ConfigurationError for the first value of ``space`` the trainer cannot take.

    ``apply(trainer_copy, {key: value})`` merges one value as a trial would.
    """
    owner = type(trainer).__name__
    for key, domain in space.items():
        if _is_float_domain(domain) and _reads_an_int(trainer, key):
            raise ConfigurationError(
                f"Search space of {owner}: '{key}' is an integer, but its domain gives "
                f"floats ({type(domain).__name__} {domain.lower}..{domain.upper}). Use "
                f"randint, qrandint, lograndint or choice for '{key}'.")
        for value in candidate_values(domain):
            try:
                apply(copy.copy(trainer), {key: value})
            except Exception as exc:  # noqa: BLE001 - re-raised with the key and value named
                raise ConfigurationError(
                    f"Search space of {owner}: '{key}' = {value!r} is not a valid value: "
                    f"{short_reason(exc)}. Fix the values of '{key}'.") from None
