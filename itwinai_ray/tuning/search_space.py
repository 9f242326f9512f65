"""Search spaces: itwinai's YAML format -> neutral domains, checked before Ray starts.

Each entry of a YAML search space is either ``{type: <name>, <params>...}``, a domain object
(a neutral one from :mod:`.domains`, or a backend's own, e.g. ``ray.tune.uniform(0, 1)``,
which the backend turns into a neutral one), a ``{grid_search: [...]}`` dict, or a plain
constant (kept as a fixed value)::

    optim_lr: {type: loguniform, lower: 1e-4, upper: 1e-1}
    batch_size: {type: choice, categories: [32, 64]}
    epochs: 3

Every problem is a :class:`~itwinai_ray.errors.SearchSpaceError` naming the key and the fix,
also what only the backend can tell (it is asked through :mod:`.backend`, before it starts).
The backend translates the neutral domains when it assembles the experiment.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from itwinai_ray._suggest import did_you_mean
from itwinai_ray.errors import SearchSpaceError

from . import backend
from .domains import (
    LOGUNIFORM,
    NORMAL,
    UNIFORM,
    Choice,
    Domain,
    Float,
    Integer,
    is_domain,
    is_grid,
)

#: type -> (required parameters, optional parameters). ``base`` is accepted for itwinai
#: compatibility but ignored: Ray 2.x samples log-uniformly regardless of the base.
TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "choice": (("categories",), ()),
    "grid_search": (("values",), ()),
    "uniform": (("lower", "upper"), ()),
    "quniform": (("lower", "upper", "q"), ()),
    "loguniform": (("lower", "upper"), ("base",)),
    "qloguniform": (("lower", "upper", "q"), ("base",)),
    "randint": (("lower", "upper"), ()),
    "qrandint": (("lower", "upper"), ("q",)),
    "lograndint": (("lower", "upper"), ("base",)),
    "qlograndint": (("lower", "upper", "q"), ("base",)),
    "randn": ((), ("mean", "sd")),
    "qrandn": (("q",), ("mean", "sd")),
}
_INT_TYPES = {"randint", "qrandint", "lograndint", "qlograndint"}
_LOG_TYPES = {"loguniform", "qloguniform", "lograndint", "qlograndint"}
_PARAM_NAMES = {p for req, opt in TYPES.values() for p in (*req, *opt)}


_close = did_you_mean


_is_grid = is_grid


def _number(key: str, kind: str, name: str, value: Any, integer: bool = False) -> float | int:
    """``value`` as a number; numeric strings (YAML's ``1e-3``) are converted with float()."""
    where = f"Search-space key {key!r}: {kind} parameter {name!r}"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SearchSpaceError(f"{where} must be a number, got {value!r}.") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise SearchSpaceError(f"{where} must be a number, got {value!r} "
                               f"({type(value).__name__}).")
    if integer:
        if not float(value).is_integer():
            raise SearchSpaceError(f"{where} must be an integer for {kind}, got {value!r}. "
                                   f"Use a float type (uniform, loguniform...) instead.")
        return int(value)
    return float(value)


def _nonempty_list(key: str, kind: str, name: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise SearchSpaceError(f"Search-space key {key!r}: {kind} parameter {name!r} must be a "
                               f"list, got {value!r}.")
    items = list(value)
    if not items:
        raise SearchSpaceError(f"Search-space key {key!r}: {kind} has an empty {name!r} list. "
                               f"Give at least one value.")
    return items


def _check_params(key: str, kind: str, params: Mapping[str, Any]) -> None:
    required, optional = TYPES[kind]
    accepted = ", ".join([*required, *(f"{p} (optional)" for p in optional)]) or "none"
    for name in params:
        if name not in required and name not in optional:
            raise SearchSpaceError(
                f"Search-space key {key!r}: {kind} does not take {name!r}."
                f"{_close(name, (*required, *optional))} Accepted parameters: {accepted}.")
    for name in required:
        if name not in params:
            raise SearchSpaceError(f"Search-space key {key!r}: {kind} needs {name!r}. "
                                   f"Accepted parameters: {accepted}.")


def _multiple(x: float, q: float) -> bool:
    return math.isclose(x / q, round(x / q), abs_tol=1e-9)


def _build_entry(key: str, entry: Mapping[str, Any]) -> Any:
    """One ``{type: ..., ...}`` entry -> a neutral domain (or a grid_search dict)."""
    kind = entry["type"]
    if not isinstance(kind, str) or kind not in TYPES:
        raise SearchSpaceError(
            f"Search-space key {key!r}: unknown type {kind!r}.{_close(str(kind), TYPES)} "
            f"Valid types: {', '.join(TYPES)}.")
    params = {k: v for k, v in entry.items() if k != "type"}
    _check_params(key, kind, params)
    if kind == "choice":
        return _checked(key, kind, Choice(tuple(
            _nonempty_list(key, kind, "categories", params["categories"]))))
    if kind == "grid_search":
        return {"grid_search": _nonempty_list(key, kind, "values", params["values"])}

    is_int = kind in _INT_TYPES
    q = None
    if "q" in params:
        q = _number(key, kind, "q", params["q"], integer=is_int)
        if q <= 0:
            raise SearchSpaceError(f"Search-space key {key!r}: {kind} needs q > 0, got q={q}.")
    if "base" in params:
        _number(key, kind, "base", params["base"])
    if kind in ("randn", "qrandn"):
        mean = _number(key, kind, "mean", params.get("mean", 0.0))
        sd = _number(key, kind, "sd", params.get("sd", 1.0))
        if sd <= 0:
            raise SearchSpaceError(f"Search-space key {key!r}: {kind} needs sd > 0, got sd={sd}.")
        return _checked(key, kind, Float(-math.inf, math.inf, NORMAL, q, mean, sd))

    lower = _number(key, kind, "lower", params["lower"], integer=is_int)
    upper = _number(key, kind, "upper", params["upper"], integer=is_int)
    if kind in _LOG_TYPES and lower <= 0:
        raise SearchSpaceError(f"Search-space key {key!r}: {kind} needs lower > 0 (a log scale "
                               f"has no zero), got lower={lower}. Use a small positive value "
                               f"such as 1e-6, or type: uniform.")
    exclusive = is_int and (q is None or q == 1)  # Ray's int samplers exclude upper when q == 1
    if lower > upper or (exclusive and lower == upper):
        rel = "lower < upper (upper is exclusive)" if exclusive else "lower <= upper"
        raise SearchSpaceError(f"Search-space key {key!r}: {kind} needs {rel}, got "
                               f"lower={lower}, upper={upper}. Swap or widen the bounds.")
    if q is not None and not is_int:
        for name, bound in (("lower", lower), ("upper", upper)):
            if not _multiple(bound, q):
                raise SearchSpaceError(f"Search-space key {key!r}: {kind} needs bounds that are "
                                       f"multiples of q={q}, but {name}={bound} is not.")
    if q is not None and is_int and math.floor(upper / q) < math.ceil(lower / q):
        raise SearchSpaceError(f"Search-space key {key!r}: {kind} has no multiple of q={q} "
                               f"between lower={lower} and upper={upper}.")
    if kind == "qrandint" and q is None:
        q = 1  # the default q of qrandint (quantized by 1, unlike randint)
    sampler = LOGUNIFORM if kind in _LOG_TYPES else UNIFORM
    return _checked(key, kind, (Integer if is_int else Float)(lower, upper, sampler, q))


def _checked(key: str, kind: str, domain: Domain) -> Domain:
    """``domain``, once the backend has accepted it (its own checks, e.g. Ray's exact
    divisibility of the bounds by q), before it starts."""
    try:
        backend.check_domain(domain)
    except (ValueError, AssertionError) as err:  # anything Ray rejects that we did not foresee
        raise SearchSpaceError(f"Search-space key {key!r}: invalid {kind}: {err}") from err
    return domain


def _domain(entry: Any) -> Domain | None:
    """``entry`` as a neutral domain when it is one, or a backend's own domain object."""
    if is_domain(entry):
        return entry
    if isinstance(entry, (Mapping, str, bytes, int, float, type(None))):
        return None
    return backend.neutral_domain(entry)


def build_search_space(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """Convert a YAML search space into a neutral one (see :mod:`.domains`).

    Args:
        spec: key -> ``{type: ..., ...}``, a domain (neutral or a backend's, such as a
            ``ray.tune`` domain), ``{grid_search: [...]}`` or a constant. A space that was
            already built passes through unchanged.

    Returns:
        A new dict: key -> neutral domain, ``{grid_search: [...]}`` dict or constant; the
        backend translates it when it assembles the experiment.

    Raises:
        SearchSpaceError: naming the key and how to fix it.
    """
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(f"A search space must be a mapping of key -> distribution, got "
                               f"{type(spec).__name__}.")
    space: dict[str, Any] = {}
    for key, entry in spec.items():
        if not isinstance(key, str):
            raise SearchSpaceError(f"Search-space keys must be strings, got {key!r}.")
        domain = _domain(entry)
        if domain is not None:
            space[key] = domain
        elif _is_grid(entry):
            space[key] = {"grid_search": _nonempty_list(key, "grid_search", "grid_search",
                                                        entry["grid_search"])}
        elif isinstance(entry, Mapping) and "type" in entry:
            space[key] = _build_entry(key, entry)
        elif isinstance(entry, Mapping) and _PARAM_NAMES & set(entry):
            raise SearchSpaceError(
                f"Search-space key {key!r} looks like a distribution ({sorted(entry)}) but has "
                f"no 'type'. Add one of: {', '.join(TYPES)}.")
        else:
            space[key] = entry  # a constant
    return space


#: Names users often write for TrainingConfiguration fields ('learning_rate' -> 'optim_lr').
_SYNONYMS = {"learning_rate": "optim_lr", "lr": "optim_lr", "weight_decay": "optim_weight_decay",
             "wd": "optim_weight_decay", "momentum": "optim_momentum", "betas": "optim_betas",
             "bs": "batch_size", "scheduler": "lr_scheduler"}


def _suggest(key: str, known: list[str]) -> list[str]:
    """Known synonyms first, then close spellings."""
    matches = [_SYNONYMS[key]] if _SYNONYMS.get(key) in known else []
    matches += [m for m in difflib.get_close_matches(key, known, n=3, cutoff=0.5)
                if m not in matches]
    return matches[:3]


def validate_keys(space_keys: Iterable[str], known_keys: Iterable[str], where: str,
                  explain: str = "it is not a TrainingConfiguration field, a key of the "
                                 "trainer's config, or a constructor argument") -> None:
    """Fail when a search-space key is not read by anyone (a typo would be silently ignored).

    Args:
        space_keys: the keys of the search space.
        known_keys: every key that ``where`` reads.
        where: who reads the keys, e.g. ``"DigitsTrainer"``.
        explain: why a key counts as unread, for the message.

    Raises:
        SearchSpaceError: one sentence per unread key, with the closest known keys.
    """
    known = sorted(set(known_keys))
    problems = []
    for key in space_keys:
        if key in known:
            continue
        matches = _suggest(key, known)
        hint = (" Did you mean " + " or ".join(repr(m) for m in matches) + "?") if matches else (
            f" Known keys: {', '.join(known)}." if known else "")
        problems.append(f"Search-space key {key!r} is not read by {where}: {explain}.{hint}")
    if problems:
        raise SearchSpaceError("\n".join(problems))


def new_config_keys(space_keys: Iterable[str], known_keys: Iterable[str],
                    where: str) -> list[str]:
    """Keys a trainer does not declare, which a trial adds to its config (as itwinai does).

    A trainer may read a key that only the search space provides (``self.config.my_key``),
    so such a key is not an error; one that is a near spelling of a key the trainer reads
    (``optim_lrr``) is. Returns one warning line per new key, naming the likely intended key.

    Raises:
        SearchSpaceError: a near misspelling of a known key.
    """
    known = sorted(set(known_keys))
    warnings_, typos = [], []
    for key in space_keys:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
        if close:
            typos.append(f"Search-space key {key!r} is not read by {where}. Did you mean "
                         f"{close[0]!r}?")
            continue
        matches = _suggest(key, known)
        hint = f" If you meant {' or '.join(repr(m) for m in matches)}, rename it." \
            if matches else ""
        warnings_.append(f"Search-space key {key!r} is not a setting {where} declares: each "
                         f"trial adds it to the trainer's config (self.config.{key}), as "
                         f"itwinai does; it changes nothing unless the trainer reads it.{hint}")
    if typos:
        raise SearchSpaceError("\n".join(typos))
    return warnings_


def _describe_one(value: Any) -> str:
    if _is_grid(value):
        return f"grid_search({list(value['grid_search'])!r})"
    if not is_domain(value):
        return f"constant({value!r})"
    return value.describe()


def describe(space: Mapping[str, Any]) -> dict[str, str]:
    """Human-readable one-liners per key, e.g. ``{'optim_lr': 'loguniform(0.0001, 0.1)'}``."""
    return {key: _describe_one(value) for key, value in build_search_space(space).items()}


def grid_keys(space: Mapping[str, Any]) -> list[str]:
    """The keys whose value is a ``{grid_search: [...]}`` dict."""
    return [key for key, value in build_search_space(space).items() if _is_grid(value)]


def to_grid(space: Mapping[str, Any]) -> dict[str, Any]:
    """Turn every ``choice`` into ``grid_search`` (for the ``grid`` searcher).

    Raises:
        SearchSpaceError: for a continuous or sampled domain, which a grid cannot enumerate.
    """
    grid: dict[str, Any] = {}
    for key, value in build_search_space(space).items():
        if isinstance(value, Choice):
            grid[key] = {"grid_search": list(value.categories)}
        elif is_domain(value):
            raise SearchSpaceError(
                f"grid search needs discrete values: {key!r} is {_describe_one(value)}. "
                f"Use type: choice or grid_search")
        else:
            grid[key] = value
    return grid


def count_grid_points(space: Mapping[str, Any]) -> int:
    """Number of grid combinations: the product of grid_search lengths (1 if none)."""
    values = build_search_space(space).values()
    return math.prod(len(value["grid_search"]) for value in values if _is_grid(value))


__all__ = ["TYPES", "build_search_space", "count_grid_points", "describe", "grid_keys",
           "new_config_keys", "to_grid", "validate_keys"]
