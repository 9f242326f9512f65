"""The pooled worker-group path's pieces that need no Ray cluster: the option's validation and
plumbing, the rank layout, and a pooled worker's report hand-over (tests/e2e/test_pool_e2e.py
runs the whole path on a real Ray)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from itwinai_ray.backends.ray import driver
from itwinai_ray.backends.ray.pool import RankLayout
from itwinai_ray.backends.ray.pool_worker import GO, REPORT, STOP, Job, PoolWorker, _Stopped
from itwinai_ray.backends.ray.trial_spec import _TrialSpec
from itwinai_ray.errors import ConfigurationError
from itwinai_ray.tuning.experiment_spec import ExperimentSpec
from itwinai_ray.tuning.settings import TuneSettings


def test_reuse_actors_is_checked_and_read_from_ray_objects() -> None:
    assert TuneSettings.from_any({}).reuse_actors is None
    assert TuneSettings.from_any({"reuse_actors": True}).reuse_actors is True
    with pytest.raises(ConfigurationError, match=r"tune_config.reuse_actors is 'yes'.*true"):
        TuneSettings.from_any({"reuse_actors": "yes"})
    from ray.tune import TuneConfig

    assert TuneSettings.from_any(TuneConfig(reuse_actors=True)).reuse_actors is True


@pytest.mark.parametrize(("workers", "option", "reused"), [
    (1, None, True), (2, None, False), (2, True, True), (1, False, False), (2, False, False)])
def test_which_trials_reuse_their_process(workers: int, option: bool | None,
                                          reused: bool) -> None:
    spec = ExperimentSpec(worker_fn=print, param_space={}, num_workers=workers, use_gpu=False,
                          resources_per_worker=None, metric="loss", mode="min",
                          num_samples=1, storage_path="r", name="n", reuse_actors=option)
    assert driver._reuse_actors(spec) is reused


def test_ranks_group_each_nodes_workers_and_share_its_gpus() -> None:
    # bundles 0..3 placed on nodes B, A, B, A: ranks go node by node, B first (bundle 0)
    layout = RankLayout.of([("B", "10.0.0.2", ["0"]), ("A", "10.0.0.1", ["1"]),
                            ("B", "10.0.0.2", ["1"]), ("A", "10.0.0.1", ["0"])])
    assert layout.order == [0, 2, 1, 3]
    assert layout.node_ranks == [0, 0, 1, 1]
    assert layout.local_ranks == [0, 1, 0, 1]
    assert layout.node_gpus == [["0", "1"], ["0", "1"], ["1", "0"], ["1", "0"]]
    assert layout.ip == "10.0.0.2"
    one = RankLayout.of([("A", "h", []), ("A", "h", [])])
    assert (one.order, one.node_ranks, one.local_ranks, one.node_gpus) == (
        [0, 1], [0, 0], [0, 1], [[], []])


def _job(tmp_path: Path, rank: int = 1) -> Job:
    spec = _TrialSpec(worker_fn_ref=None, num_workers=2, use_gpu=False,
                      resources_per_worker={"CPU": 1.0}, train_storage_path=str(tmp_path),
                      trial_config_base={}, train_checkpoints_to_keep=None,
                      required_metrics=("loss",), pooled=True)
    return Job(spec=spec, config={}, trial_id="t1", trial_dir=str(tmp_path), resume_dir=None,
               run_dir=str(tmp_path / "run"), rank=rank, world_size=2, local_rank=rank,
               local_world_size=2, node_rank=0, master=("10.0.0.1", 29500))


def test_launch_variables_are_the_launchers(tmp_path: Path) -> None:
    assert _job(tmp_path).launch_env() == {
        "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
        "NODE_RANK": "0", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}


def test_a_report_waits_for_its_verdict_and_stop_ends_the_trial_there(tmp_path: Path) -> None:
    worker = PoolWorker()
    ctx = worker._context(_job(tmp_path))
    ckpt = tmp_path / "mine"
    ckpt.mkdir()
    (ckpt / "model_rank1.pt").write_text("w")
    outcome: list[str] = []

    def train() -> None:
        try:
            ctx.report({"loss": 1.0}, str(ckpt))
            outcome.append("went on")
            ctx.report({"loss": 0.5})
            outcome.append("went on again")
        except _Stopped:
            outcome.append("stopped")

    thread = threading.Thread(target=train)
    thread.start()
    kind, metrics, path = worker.next(timeout=10)
    assert (kind, metrics) == (REPORT, {"loss": 1.0})
    # the checkpoint was copied before the hand-over: the worker may delete its own
    assert Path(path) == tmp_path / "run" / "checkpoint_000001"
    assert (Path(path) / "model_rank1.pt").read_text() == "w"
    assert worker.next(timeout=0.2) is None and outcome == []  # waits for the verdict
    worker.answer(GO)
    assert worker.next(timeout=10) == (REPORT, {"loss": 0.5}, None)
    worker.answer(STOP)
    thread.join(10)
    assert outcome == ["went on", "stopped"]


def test_a_stop_between_reports_ends_the_trial_at_the_next(tmp_path: Path) -> None:
    worker = PoolWorker()
    ctx = worker._context(_job(tmp_path))
    worker.stop()
    with pytest.raises(_Stopped):
        ctx.report({"loss": 1.0})
    assert worker.next(timeout=0.1) is None  # nothing was handed over


def test_a_failed_group_survives_pickling_with_its_error_and_text():
    """Ray pickles a trial's error with its cause: a GroupFailed that did not unpickle showed
    as "TypeError: GroupFailed.__init__() missing ... 'text'" instead of the worker's error."""
    import pickle

    from itwinai_ray.backends.ray.pool import GroupFailed

    failed = pickle.loads(pickle.dumps(GroupFailed(ValueError("bad lr"), "rank 1 failed")))
    assert str(failed) == "rank 1 failed"
    assert isinstance(failed.error, ValueError) and str(failed.error) == "bad lr"
