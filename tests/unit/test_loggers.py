"""Loggers against real backends: an MLflow sqlite store, TensorBoard event files, logging.
Several processes opening one new store: tests/e2e/test_loggers_e2e.py.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from itwinai_ray.errors import ConfigurationError, ItwinaiRayError
from itwinai_ray.loggers import (
    ConsoleLogger,
    Logger,
    LoggersCollection,
    MLFlowLogger,
    TensorBoardLogger,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One sqlite store for the module: creating (migrating) a store takes seconds."""
    return tmp_path_factory.mktemp("mlflow")


def _client(logger: MLFlowLogger):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=logger.tracking_uri)


def _artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    """All artifact file paths of a run, recursively."""
    found: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            found |= _artifact_paths(client, run_id, info.path)
        else:
            found.add(info.path)
    return found


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


# ----- MLflow ------------------------------------------------------------------------------
def test_mlflow_defaults_store_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    logger = MLFlowLogger()
    assert logger.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"
    assert logger.artifact_location == (tmp_path.resolve() / "mlruns" / "artifacts").as_uri()
    assert logger.run_id is None and logger.client is None
    assert not any(tmp_path.iterdir())  # the constructor creates nothing
    remote = MLFlowLogger(tracking_uri="http://mlflow.example:5000")
    assert remote.tracking_uri == "http://mlflow.example:5000"
    assert remote.artifact_location is None  # the server decides
    with pytest.raises(ConfigurationError, match="either `run_id`"):
        MLFlowLogger(run_id="a", parent_run_id="b")


def test_mlflow_roundtrip(tmp_path: Path, store: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    logger = MLFlowLogger(savedir=store, experiment_name="exp", run_name="r1")

    long_value = "x" * 10_000
    with logger.start_logging(rank=0):
        logger.save_hyperparameters(
            {"lr": 0.01, "optim": {"name": "adam", "betas": [0.9, 0.99]}, "long": long_value}
        )
        for epoch, loss in enumerate([0.5, 0.25, 0.125]):
            logger.log(loss, "train_loss", step=epoch)
        logger.log(7, "extra", kind="param")
        logger.log("some text", "notes/readme.txt", kind="text")
        logger.log({"a": 1, "b": [1, 2]}, "summary.json", kind="dict")
        logger.log(str(source), "files", kind="artifact")
        logger.log({"w": 1.0}, "model/state.pt", kind="torch")
        logger.log(_figure(), "plots/curve", kind="figure")
        run_id = logger.run_id

    client = _client(logger)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "r1"
    params = run.data.params
    assert params["lr"] == "0.01"
    assert params["optim.name"] == "adam"
    assert params["optim.betas"] == "[0.9, 0.99]"
    assert params["extra"] == "7"
    assert len(params["long"]) == 6000 and params["long"].endswith("[truncated]")
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25), (2, 0.125)]
    assert _artifact_paths(client, run_id) == {
        "notes/readme.txt",
        "summary.json",
        "files/notes.txt",
        "model/state.pt",
        "plots/curve.png",
    }
    # Artifacts live under savedir, not in the process' working directory.
    assert (store / "artifacts").is_dir()


def test_mlflow_status_killed_and_parent_child(store: Path) -> None:
    parent = MLFlowLogger(savedir=store, experiment_name="exp2", run_name="trial")
    parent.create_logger_context(rank=0)
    child = MLFlowLogger(
        savedir=store, experiment_name="exp2", parent_run_id=parent.run_id, tags={"k": "v"}
    )
    child.create_logger_context(rank=0)
    child.log(1.0, "loss", step=0)
    child.destroy_logger_context("KILLED")
    parent.destroy_logger_context()

    client = _client(parent)
    child_run = client.get_run(child.run_id)
    assert child_run.info.status == "KILLED"
    assert child_run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert child_run.data.tags["k"] == "v"
    assert client.get_run(parent.run_id).info.status == "FINISHED"
    assert child_run.info.experiment_id == client.get_run(parent.run_id).info.experiment_id


def test_mlflow_failed_on_exception_and_resume(store: Path) -> None:
    logger = MLFlowLogger(savedir=store, experiment_name="exp3")
    with pytest.raises(RuntimeError, match="boom"), logger.start_logging(rank=0):
        run_id = logger.run_id
        raise RuntimeError("boom")
    client = _client(logger)
    assert client.get_run(run_id).info.status == "FAILED"

    resumed = MLFlowLogger(savedir=store, experiment_name="exp3", run_id=run_id)
    with resumed.start_logging(rank=0):
        resumed.log(3.0, "after", step=5)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert client.get_run(run_id).data.metrics["after"] == 3.0


def test_mlflow_rank_gating(tmp_path: Path, store: Path) -> None:
    logger = MLFlowLogger(savedir=tmp_path / "store", experiment_name="exp")
    with logger.start_logging(rank=1):
        logger.save_hyperparameters({"lr": 1})
        logger.log(1.0, "loss", step=0)
        assert logger.run_id is None
    assert not (tmp_path / "store").exists()  # nothing opened, nothing written

    everyone = MLFlowLogger(savedir=store, experiment_name="exp4", log_on_workers=-1)
    with everyone.start_logging(rank=3):
        everyone.log(2.0, "loss", step=0)
    run = _client(everyone).get_run(everyone.run_id)
    assert run.data.metrics["loss"] == 2.0
    assert run.data.tags["itwinai_ray.rank"] == "3"


# ----- gating and validation --------------------------------------------------------------
@pytest.mark.parametrize(
    ("log_freq", "expected"),
    [
        ("epoch", [True, False, False, False, False]),
        ("batch", [True, True, True, True, True]),
        (2, [True, True, False, True, False]),
    ],
)
def test_should_log(log_freq, expected) -> None:
    logger = ConsoleLogger(log_freq=log_freq)
    assert [logger.should_log(b) for b in (None, 0, 1, 2, 3)] == expected


@pytest.mark.parametrize("bad", [0, -3, "step", 1.5, True])
def test_bad_log_freq(bad) -> None:
    with pytest.raises(ConfigurationError, match="log_freq"):
        ConsoleLogger(log_freq=bad)


def test_bad_log_on_workers_and_status() -> None:
    with pytest.raises(ConfigurationError, match="log_on_workers"):
        ConsoleLogger(log_on_workers=-2)
    logger = ConsoleLogger()
    logger.create_logger_context(rank=0)
    with pytest.raises(ConfigurationError, match="FINISHED, FAILED, KILLED"):
        logger.destroy_logger_context("DONE")


def test_bad_kind_and_use_before_context(tmp_path: Path) -> None:
    logger = ConsoleLogger(savedir=tmp_path)
    with pytest.raises(ConfigurationError, match="Valid kinds: metric, param, artifact"):
        logger.log(1, "x", kind="imagee")
    with pytest.raises(ItwinaiRayError, match="create_logger_context"):
        logger.log(1.0, "loss")
    with logger.start_logging(rank=5):  # not selected: unknown kinds still fail loudly
        with pytest.raises(ConfigurationError, match="Unknown log kind 'modell'"):
            logger.log(1, "x", kind="modell")


def test_itwinai_kinds_are_stored_as_their_nearest_kind(tmp_path: Path) -> None:
    """itwinai's kinds: model -> a torch file, image -> a PNG, dataset/watch -> accepted."""
    import numpy as np
    import torch

    logger = ConsoleLogger(savedir=tmp_path)
    with logger.start_logging(rank=0):
        logger.log(torch.nn.Linear(2, 1), "net.pt", kind="model")
        logger.log(np.zeros((4, 4, 3)), "picture", kind="image")
        logger.log(12.5, "joules", kind="carbon")
        logger.log("anything", "data", kind="dataset")
    assert isinstance(torch.load(tmp_path / "net.pt", weights_only=False), torch.nn.Linear)
    assert (tmp_path / "picture.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "data").exists()


def test_log_freq_filters_batch_calls(tmp_path: Path, caplog) -> None:
    logger = ConsoleLogger(savedir=tmp_path, log_freq=2)
    with caplog.at_level(logging.INFO, logger="itwinai_ray"), logger.start_logging(rank=0):
        for batch_idx in range(5):
            logger.log(float(batch_idx), "loss", step=batch_idx, batch_idx=batch_idx)
        logger.log(9.0, "loss", step=0)
    messages = [r.getMessage() for r in caplog.records if "loss=" in r.getMessage()]
    assert messages == [
        "step 0 batch 0 | loss=0",
        "step 2 batch 2 | loss=2",
        "step 4 batch 4 | loss=4",
        "epoch 0 | loss=9",
    ]


# ----- console ----------------------------------------------------------------------------
def test_console_logger(tmp_path: Path, caplog) -> None:
    logger = ConsoleLogger(savedir=tmp_path / "logs")
    with caplog.at_level(logging.INFO, logger="itwinai_ray"), logger.start_logging(rank=0):
        logger.save_hyperparameters({"lr": 0.1, "model": {"depth": 3}})
        logger.log(0.123456, "train_loss", step=3)
        logger.log(0.5, "ignored", step=3, batch_idx=7)  # log_freq="epoch"
        logger.log({"a": 1}, "summary.json", kind="dict")
        logger.log("hi", "notes.txt", kind="text")
    text = caplog.text
    assert "params | lr=0.1, model.depth=3" in text
    assert "epoch 3 | train_loss=0.1235" in text
    assert "ignored" not in text
    assert (tmp_path / "logs" / "summary.json").read_text().startswith("{")
    assert (tmp_path / "logs" / "notes.txt").read_text() == "hi"

    caplog.clear()
    other_rank = ConsoleLogger(savedir=tmp_path / "rank1")
    with caplog.at_level(logging.INFO, logger="itwinai_ray"), other_rank.start_logging(rank=1):
        other_rank.log(1.0, "loss", step=0)
        other_rank.log("hi", "notes.txt", kind="text")
    assert caplog.records == []
    assert not (tmp_path / "rank1").exists()


# ----- TensorBoard ------------------------------------------------------------------------
def test_tensorboard_scalars_and_figure(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(savedir=tmp_path / "tb")
    fig = _figure()
    with logger.start_logging(rank=0):
        logger.save_hyperparameters({"lr": 0.01, "layers": [1, 2]})
        for step, value in enumerate([1.0, 0.5, 0.25]):
            logger.log(value, "train_loss", step=step)
        logger.log("a note", "notes", kind="text", step=0)
        logger.log(fig, "curve", kind="figure", step=0)
        logger.log({"a": 1}, "summary.json", kind="dict")

    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "tb" / "summary.json").exists()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    scalars = acc.Scalars("train_loss")
    assert [(s.step, s.value) for s in scalars] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert "curve" in acc.Tags()["images"]


def test_tensorboard_per_rank_dirs(tmp_path: Path) -> None:
    logger = TensorBoardLogger(savedir=tmp_path, log_on_workers=[0, 1])
    with logger.start_logging(rank=1):
        logger.log(1.0, "loss", step=0)
    assert list((tmp_path / "rank_1").glob("events.out.tfevents.*"))
    assert not (tmp_path / "rank_0").exists()


# ----- collection and pickling ------------------------------------------------------------
def test_collection_forwards_with_own_gating(tmp_path: Path, store: Path, caplog) -> None:
    mlf = MLFlowLogger(savedir=store, experiment_name="exp5", log_freq="batch")
    console = ConsoleLogger(savedir=tmp_path / "logs")  # epoch only
    loggers = LoggersCollection([console, mlf])
    with caplog.at_level(logging.INFO, logger="itwinai_ray"), loggers.start_logging(rank=0):
        loggers.save_hyperparameters({"lr": 0.2})
        loggers.log(0.7, "loss", step=4, batch_idx=4)
    assert "loss" not in caplog.text
    assert "lr=0.2" in caplog.text
    run = _client(mlf).get_run(mlf.run_id)
    assert run.data.metrics["loss"] == 0.7
    assert run.data.params["lr"] == "0.2"
    assert run.info.status == "FINISHED"
    with pytest.raises(ConfigurationError, match="Logger instances"):
        LoggersCollection([object()])  # type: ignore[list-item]


def _all_loggers(tmp_path: Path) -> list[Logger]:
    return [
        ConsoleLogger(savedir=tmp_path / "c", log_freq=3),
        MLFlowLogger(savedir=tmp_path / "m", parent_run_id="abc", tags={"a": 1}),
        TensorBoardLogger(savedir=tmp_path / "t", log_on_workers=[0, 2]),
    ]


def test_loggers_pickle_before_context(tmp_path: Path) -> None:
    loggers = _all_loggers(tmp_path)
    for logger in [*loggers, LoggersCollection(loggers)]:
        clone = pickle.loads(pickle.dumps(logger))
        assert type(clone) is type(logger)
        assert repr(clone) == repr(logger)
    assert not any(tmp_path.iterdir())


def test_open_logger_pickles_without_handles(tmp_path: Path) -> None:
    logger = TensorBoardLogger(savedir=tmp_path)
    logger.create_logger_context(rank=0)
    clone = pickle.loads(pickle.dumps(logger))
    logger.destroy_logger_context()
    assert clone.writer is None and not clone.is_active and clone.rank is None


def test_new_sqlite_stores_start_from_the_cached_migrated_one(tmp_path: Path,
                                                               monkeypatch) -> None:
    """The schema migration runs once per MLflow version; later new stores are copies that
    work like any store, and an existing store is never replaced."""
    import mlflow

    from itwinai_ray.loggers import _sqlite_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    template = tmp_path / "cache" / "itwinai_ray" / f"mlflow-{mlflow.__version__}-empty.db"
    run_ids = []
    for name in ("a", "b"):
        logger = MLFlowLogger(savedir=tmp_path / name, experiment_name="exp", run_name=name)
        with logger.start_logging(rank=0):
            logger.log(0.5, "loss", step=1)
        run_ids.append(logger.run_id)
        assert template.is_file()  # made by the first store, copied by both
        client = _client(logger)
        assert [m.value for m in client.get_metric_history(logger.run_id, "loss")] == [0.5]
        default = client.get_experiment("0")  # MLflow's Default, where MLflow would put it
        assert default.artifact_location == (tmp_path / "mlruns" / "0").resolve().as_uri()
    assert run_ids[0] != run_ids[1]
    before = (tmp_path / "a" / "mlflow.db").read_bytes()
    assert _sqlite_store.seed_new_store(tmp_path / "a" / "mlflow.db") is False
    assert (tmp_path / "a" / "mlflow.db").read_bytes() == before
