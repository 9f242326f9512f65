"""Pipeline: chains components, each step's outputs becoming the next step's inputs."""

from __future__ import annotations

import inspect
import logging
import time
import typing
from collections.abc import Iterator
from typing import Any

from .errors import PipelineError

logger = logging.getLogger(__name__)


def _arity(step: Any) -> tuple[int, int | None, str]:
    """(required positional, maximum positional or None if unbounded, signature text)."""
    try:
        sig = inspect.signature(step.execute)
    except (TypeError, ValueError):  # builtins without a signature: accept anything
        return 0, None, "(...)"
    required, maximum = 0, 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            maximum = None
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if maximum is not None:
                maximum += 1
            if p.default is p.empty:
                required += 1
    return required, maximum, str(sig)


def _output_count(step: Any) -> int | None:
    """How many values ``step.execute`` returns, from its return annotation; None if unknown."""
    try:
        hint = typing.get_type_hints(step.execute).get("return", Any)
    except Exception:  # unresolvable annotations: do not guess
        return None
    if hint is Any:
        return None
    if hint is type(None):
        return 0
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not args or Ellipsis in args:
            return None
        return len(args)
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return None
    return 1


def _as_args(output: Any) -> tuple[Any, ...]:
    if output is None:
        return ()
    return output if isinstance(output, tuple) else (output,)


class Pipeline:
    """A sequence of steps executed in order.

    ``steps`` is a list, or a dict ``{name: step}`` whose keys name the steps. Each step has an
    ``execute`` method; a tuple return value is unpacked into the next step's arguments.

    ``pipe[0:2]`` returns a new pipeline with those steps; ``pipe[i]`` or ``pipe["name"]``
    returns one step.
    """

    def __init__(self, steps: list[Any] | dict[str, Any], name: str | None = None) -> None:
        if isinstance(steps, dict):
            self.names = [str(k) for k in steps]
            self.steps = list(steps.values())
        elif isinstance(steps, (list, tuple)):
            self.steps = list(steps)
            self.names = [getattr(s, "name", None) or type(s).__name__ for s in self.steps]
        else:
            raise PipelineError(
                f"Pipeline steps must be a list or a dict of components, got {type(steps).__name__}"
            )
        for name, step in zip(self.names, self.steps):
            if not callable(getattr(step, "execute", None)):
                raise PipelineError(
                    f"Pipeline step {name!r} ({type(step).__name__}) has no execute() method"
                )
        self.name = name or "Pipeline"

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.steps)

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, slice):
            return Pipeline(dict(zip(self.names[key], self.steps[key])), name=self.name)
        if isinstance(key, str):
            if key not in self.names:
                raise PipelineError(f"No step named {key!r}. Steps: {', '.join(self.names)}")
            return self.steps[self.names.index(key)]
        try:
            return self.steps[key]
        except IndexError:
            raise PipelineError(
                f"Step index {key} is out of range for a pipeline of {len(self)} steps"
            ) from None

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={type(s).__name__}" for n, s in zip(self.names, self.steps))
        return f"Pipeline({inner})"

    def check_signatures(self, n_inputs: int = 0) -> None:
        """Check, before running anything, that each step accepts what the previous returns.

        A step's number of outputs comes from its ``execute`` return annotation
        (``tuple[A, B, C]`` is three values). Where it is not annotated, the next step is
        checked when it runs instead.
        """
        n: int | None = n_inputs
        for idx, step in enumerate(self.steps):
            if n is not None:
                self._check_step(idx, n)
            n = _output_count(step)

    def _check_step(self, idx: int, n_args: int) -> None:
        step, name = self.steps[idx], self.names[idx]
        required, maximum, sig = _arity(step)
        if n_args < required or (maximum is not None and n_args > maximum):
            if idx == 0:
                source = f"the pipeline was given {n_args} input(s)"
            else:
                source = f"the previous step {self.names[idx - 1]!r} returned {n_args} value(s)"
            expected = (f"{required}" if maximum == required
                        else f"{required} to {'any' if maximum is None else maximum}")
            raise PipelineError(
                f"Step {idx} {name!r} ({type(step).__name__}.execute{sig}) takes {expected} "
                f"positional input(s), but {source}. Fix the step order, or insert an Adapter "
                f"step to select/reorder values."
            )

    def execute(self, *args: Any) -> Any:
        """Run every step; return the last step's output."""
        self.check_signatures(len(args))
        out: Any = args
        for idx, (name, step) in enumerate(zip(self.names, self.steps)):
            inputs = args if idx == 0 else _as_args(out)
            self._check_step(idx, len(inputs))
            t0 = time.perf_counter()
            logger.info("Pipeline step %d/%d: %s", idx + 1, len(self), name)
            out = step.execute(*inputs)
            logger.debug("Step %s took %.2f s", name, time.perf_counter() - t0)
        return out
