"""MLflow logger: several processes open one new sqlite store at once (trials starting
together). The loggers in one process: tests/unit/test_loggers.py.
"""

from __future__ import annotations

from itwinai_ray.loggers import (
    MLFlowLogger,
)


def _open_log_close(db_dir: str, rank: int) -> None:

    logger = MLFlowLogger(savedir=db_dir, experiment_name="race", log_on_workers=-1)
    logger.create_logger_context(rank=rank)
    logger.log(float(rank), "value", kind="metric", step=0)
    logger.destroy_logger_context()


def test_concurrent_processes_share_a_new_sqlite_store(tmp_path) -> None:
    """Trials starting at once all open the same fresh store: none may fail."""
    import multiprocessing as mp

    import mlflow

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_open_log_close, args=(str(tmp_path), r)) for r in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("race")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.metrics["value"] for r in runs) == [0.0, 1.0, 2.0]
    assert {r.info.status for r in runs} == {"FINISHED"}
