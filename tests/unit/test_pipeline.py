"""Pipeline chaining, slicing, signature checks and the itwinai components."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from itwinai_ray.components import Adapter, DataGetter, DataSplitter, Saver
from itwinai_ray.errors import ConfigurationError, PipelineError
from itwinai_ray.pipeline import Pipeline


class Numbers(DataGetter):
    def __init__(self, n: int = 10) -> None:
        super().__init__()
        self.n = n

    def execute(self) -> list[int]:
        return list(range(self.n))


class Double:
    name = "double"

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, xs: list[int]) -> tuple[list[int], int]:
        self.calls += 1
        return [2 * x for x in xs], len(xs)


class Sum:
    def __init__(self) -> None:
        self.calls = 0

    def execute(self, xs: list[int], n: int) -> int:
        self.calls += 1
        return sum(xs) + n


class TakesThree:
    def execute(self, a: Any, b: Any, c: Any) -> Any:
        return a


class Keep(Saver):
    def execute(self, artifact: Any) -> Any:
        self.kept = artifact
        return artifact


def test_chains_outputs_into_inputs() -> None:
    pipe = Pipeline([Numbers(4), Double(), Sum()])
    assert pipe.execute() == (0 + 2 + 4 + 6) + 4


def test_dict_steps_named_and_sliced() -> None:
    pipe = Pipeline({"get": Numbers(3), "double": Double(), "sum": Sum()})
    assert pipe.names == ["get", "double", "sum"]
    head = pipe[0:2]
    assert isinstance(head, Pipeline) and len(head) == 2
    assert head.execute() == ([0, 2, 4], 3)
    assert isinstance(pipe["sum"], Sum)
    assert isinstance(pipe[-1], Sum)
    with pytest.raises(PipelineError, match="No step named 'nope'"):
        pipe["nope"]


def test_signature_mismatch_fails_before_any_step_runs() -> None:
    double, three = Double(), TakesThree()
    pipe = Pipeline([Numbers(3), double, three])
    with pytest.raises(PipelineError, match=r"Step 2 'TakesThree'.*takes 3.*'double' returned 2"):
        pipe.execute()
    assert double.calls == 0, "the check must happen before running anything"


def test_unannotated_mismatch_is_caught_when_the_step_runs() -> None:
    class Untyped:
        def execute(self):  # no annotation: unknown output count
            return 1, 2

    pipe = Pipeline([Untyped(), TakesThree()])
    with pytest.raises(PipelineError, match="returned 2 value"):
        pipe.execute()


def test_first_step_gets_pipeline_inputs() -> None:
    pipe = Pipeline([Sum()])
    assert pipe.execute([1, 2], 3) == 6
    with pytest.raises(PipelineError, match="pipeline was given 1 input"):
        pipe.execute([1, 2])


def test_bad_steps_are_rejected() -> None:
    with pytest.raises(PipelineError, match="no execute"):
        Pipeline([object()])
    with pytest.raises(PipelineError, match="list or a dict"):
        Pipeline("steps")  # type: ignore[arg-type]


def test_adapter_reorders_and_adds_constants() -> None:
    assert Adapter(["INPUT_1", "INPUT_0", 42]).execute("a", "b") == ("b", "a", 42)
    with pytest.raises(ConfigurationError, match="refers to input 5"):
        Adapter(["INPUT_5"]).execute("a")
    keep = Keep()
    assert Pipeline([Numbers(2), Adapter(["INPUT_0"]), keep]).execute() == [0, 1]
    assert keep.kept == [0, 1]


def test_data_splitter_fractions_counts_and_seed() -> None:
    ds = TensorDataset(torch.arange(100))
    train, val, test = DataSplitter(0.6, 0.2, 0.2, rnd_seed=1).execute(ds)
    assert (len(train), len(val), len(test)) == (60, 20, 20)
    idx = {int(x) for part in (train, val, test) for (x,) in part}
    assert idx == set(range(100)), "splits are disjoint and cover the data"
    again = DataSplitter(0.6, 0.2, 0.2, rnd_seed=1).execute(ds)[0]
    assert [int(x) for (x,) in train] == [int(x) for (x,) in again]
    train, val, test = DataSplitter(0.5).execute(ds)
    assert len(train) == 50 and val is None and test is None
    train, val, _ = DataSplitter(30, 10).execute(ds)
    assert (len(train), len(val)) == (30, 10)
    with pytest.raises(ConfigurationError, match="must be <= 1"):
        DataSplitter(0.8, 0.3)
