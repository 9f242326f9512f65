"""Pipeline components, with the same names and behaviour as itwinai's.

A component is a step of a :class:`~itwinai_ray.pipeline.Pipeline`. Its ``execute`` takes the
previous step's outputs as positional arguments and returns the next step's inputs (one value,
or a tuple that is unpacked into several arguments).

Constructors only store their arguments: nothing is loaded, created or started until
``execute`` runs, so components can be built in tests and pickled into Ray workers.
"""

from __future__ import annotations

import abc
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from .errors import ConfigurationError

logger = logging.getLogger(__name__)


def monitor_exec(method: Callable[..., Any]) -> Callable[..., Any]:
    """itwinai's decorator for ``execute``: logs the step's duration, then ``cleanup()``."""

    @functools.wraps(method)
    def wrapper(self: BaseComponent, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.cleanup()
            self.exec_t = time.perf_counter() - start
            logger.debug("'%s' executed in %.3fs", self.name, self.exec_t)

    return wrapper


class BaseComponent(abc.ABC):
    """A pipeline step. Subclasses implement :meth:`execute`."""

    #: Constructor arguments recorded with :meth:`save_parameters` (itwinai's hook).
    parameters: dict[str, Any] | None = None

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.__class__.__name__

    def save_parameters(self, **kwargs: Any) -> None:
        """Record constructor arguments in ``self.parameters`` (as itwinai does)."""
        if self.parameters is None:
            self.parameters = {}
        self.parameters.update(kwargs)

    update_parameters = save_parameters

    @staticmethod
    def locals2params(values: dict[str, Any], pop_self: bool = True) -> dict[str, Any]:
        """``locals()`` of a constructor without ``self`` (and ``__class__``)."""
        out = dict(values)
        if pop_self:
            out.pop("self", None)
        out.pop("__class__", None)
        return out

    def cleanup(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Release what ``execute`` allocated; :func:`monitor_exec` calls it afterwards."""

    @abc.abstractmethod
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the step on the previous step's outputs."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(name={self.name!r})"


class DataGetter(BaseComponent):
    """Loads or generates a dataset. ``execute()`` takes no input and returns the dataset(s)."""

    @abc.abstractmethod
    def execute(self) -> Any: ...


class DataSplitter(BaseComponent):
    """Splits one dataset into train, validation and test sets.

    Proportions are fractions that sum to at most 1 (the remainder is dropped). An integer
    proportion is an absolute number of samples. The default implementation uses
    :func:`torch.utils.data.random_split` with ``rnd_seed``; override :meth:`get_or_split`
    for other data types.
    """

    def __init__(
        self,
        train_proportion: float,
        validation_proportion: float = 0.0,
        test_proportion: float = 0.0,
        rnd_seed: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        props = {
            "train_proportion": train_proportion,
            "validation_proportion": validation_proportion,
            "test_proportion": test_proportion,
        }
        for key, value in props.items():
            if value < 0:
                raise ConfigurationError(f"DataSplitter: {key}={value} must be >= 0")
        all_fractions = all(isinstance(v, float) or v == 0 for v in props.values())
        if all_fractions and sum(props.values()) > 1.0 + 1e-9:
            raise ConfigurationError(
                "DataSplitter: train_proportion + validation_proportion + test_proportion = "
                f"{sum(props.values()):.3f} must be <= 1"
            )
        self.train_proportion = train_proportion
        self.validation_proportion = validation_proportion
        self.test_proportion = test_proportion
        self.rnd_seed = rnd_seed

    def _sizes(self, n: int) -> list[int]:
        props = [self.train_proportion, self.validation_proportion, self.test_proportion]
        sizes = [p if isinstance(p, int) and not isinstance(p, bool) and p > 1 else int(p * n)
                 for p in props]
        if sum(sizes) > n:
            raise ConfigurationError(f"DataSplitter: split sizes {sizes} exceed the {n} samples")
        return sizes

    def get_or_split(self, dataset: Any) -> tuple[Any, Any, Any]:
        import torch
        from torch.utils.data import random_split

        n = len(dataset)
        train_n, val_n, test_n = self._sizes(n)
        generator = torch.Generator().manual_seed(self.rnd_seed if self.rnd_seed is not None else 0)
        rest = n - train_n - val_n - test_n
        train, val, test, _ = random_split(dataset, [train_n, val_n, test_n, rest], generator)
        return train, (val if val_n else None), (test if test_n else None)

    def execute(self, dataset: Any) -> tuple[Any, Any, Any]:
        train, val, test = self.get_or_split(dataset)
        logger.info(
            "%s: %d train, %d validation, %d test samples", self.name, len(train),
            len(val) if val is not None else 0, len(test) if test is not None else 0,
        )
        return train, val, test


class DataProcessor(BaseComponent):
    """Transforms the (train, validation, test) datasets."""

    @abc.abstractmethod
    def execute(self, train_dataset: Any, validation_dataset: Any = None,
                test_dataset: Any = None) -> tuple[Any, Any, Any]: ...


class Trainer(BaseComponent):
    """Trains a model. ``execute(train, validation, test)`` returns the datasets and the model."""

    @abc.abstractmethod
    def execute(self, train_dataset: Any, validation_dataset: Any = None,
                test_dataset: Any = None) -> tuple[Any, Any, Any, Any]: ...


class Predictor(BaseComponent):
    """Applies a trained model to a dataset (itwinai's component). ``execute`` returns the
    predictions."""

    def __init__(self, model: Any = None, name: str | None = None) -> None:
        super().__init__(name)
        self.model = model

    @abc.abstractmethod
    def execute(self, test_dataset: Any, model: Any = None) -> Any: ...


class Saver(BaseComponent):
    """Saves an artifact (e.g. a trained model) and returns it unchanged."""

    @abc.abstractmethod
    def execute(self, artifact: Any) -> Any: ...


class Adapter(BaseComponent):
    """Reorders or selects the previous step's outputs, as itwinai's Adapter does.

    ``policy`` lists the outputs: ``"INPUT_i"`` (the literal prefix, then an index) picks the
    i-th input, any other value is passed through as a constant. Example: ``["INPUT_1",
    "INPUT_0", 42]`` swaps two inputs and appends 42.
    """

    INPUT_PREFIX = "INPUT_"

    def __init__(self, policy: list[Any], name: str | None = None) -> None:
        super().__init__(name)
        self.policy = list(policy)

    def execute(self, *args: Any) -> tuple[Any, ...]:
        out = []
        for item in self.policy:
            if isinstance(item, str) and item.startswith(self.INPUT_PREFIX):
                suffix = item[len(self.INPUT_PREFIX):]
                if not suffix.isdigit():
                    raise ConfigurationError(
                        f"Adapter policy item {item!r} must be {self.INPUT_PREFIX}<index>"
                    )
                idx = int(suffix)
                if idx >= len(args):
                    raise ConfigurationError(
                        f"Adapter policy item {item!r} refers to input {idx}, but the "
                        f"previous step returned {len(args)} value(s)"
                    )
                out.append(args[idx])
            else:
                out.append(item)
        return tuple(out)
