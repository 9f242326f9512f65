"""The Ray internals itwinai-ray relies on, each wrapped here and nowhere else (issue 16).

Ray 2.60 offers no public API for these. When Ray changes, this is the one module to check
against the new version; every other module calls these functions.
"""

from __future__ import annotations

from typing import Any


def in_tune_session() -> bool:
    """Whether this process runs a Tune function trial (not a Train worker).

    Ray 2.60: no public test; ``ray.tune.get_context()`` answers outside a session too and
    ``ray.tune.get_checkpoint()`` warns there. ``trainable_fn_utils._in_tune_session`` is
    what Tune itself uses.
    """
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    return bool(_in_tune_session())


def set_train_checkpoint(path: str) -> None:
    """Make ``ray.train.get_checkpoint()`` in this Train worker return ``path``.

    Ray 2.60's Train V2 has no public way to start a run from a checkpoint (its
    ``resume_from_checkpoint`` raises a DeprecationWarning; migration: ray issue #49454), so
    the worker's train context (``ray.train.v2._internal``) is given it.
    """
    import ray.train
    from ray.train.v2._internal.execution.context import get_train_context

    context = get_train_context()
    with context.report_order_condition:
        context.checkpoint = ray.train.Checkpoint.from_directory(path)


def alive_nodes(address: str, timeout_s: float) -> dict[str, str]:
    """``{node name: node IP}`` of the alive nodes of the cluster whose GCS is ``address``.

    Ray 2.60: ``ray.nodes()`` needs ``ray.init`` (which registers a job on the cluster that
    is still starting) and ``ray.util.state.list_nodes`` needs the dashboard; the GCS client
    (``ray._raylet.GcsClient``, ``gcs_pb2``) asks the GCS directly.
    """
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    client = GcsClient(address=address)
    infos: Any = client.get_all_node_info(timeout=timeout_s,
                                          state_filter=GcsNodeInfo.GcsNodeState.ALIVE)
    return {info.node_name: info.node_manager_address for info in infos.values()}


def without_placement_group_cleaner(callbacks: list[Any]) -> list[Any]:
    """``callbacks`` (a Train V2 trainer's default callbacks) less Ray's placement-group cleaner.

    Ray 2.60's ``DataParallelTrainer._create_default_callbacks`` always adds a
    ``PlacementGroupCleanerCallback``: a detached actor (one more Python process per Train
    run) whose monitor thread asks the State API (the dashboard) every second whether the
    controller lives. At the end of every run the controller's ``before_controller_shutdown``
    stops it with ``ray.get(cleaner.stop.remote(), timeout=12)`` (``placement_group_callback.py``
    ``_stop_cleaner``), and ``stop`` joins that thread, i.e. waits out a State API call that a
    busy dashboard answers late (``GET_ACTOR_TIMEOUT_S`` = 10 s): ``fit()`` returned up to
    12 s after the worker group was gone, and the controller logged ``GetTimeoutError: Get
    timed out`` ("Failed to stop PlacementGroupCleaner gracefully"). itwinai-ray's own
    registry releases a killed trial's placement group without the dashboard
    (:mod:`.release`), so a trial run with a registry does without Ray's cleaner. No public
    API removes a default callback; with a Ray that moved the class, ``callbacks`` are
    returned as they are.
    """
    try:
        from ray.train.v2._internal.callbacks.placement_group_callback import (
            PlacementGroupCleanerCallback,
        )
    except ImportError:  # another Ray: keep its defaults
        return callbacks
    return [cb for cb in callbacks if not isinstance(cb, PlacementGroupCleanerCallback)]


def trial_storage_dir(fallback: str) -> str:
    """The current Tune trial's directory under the storage path (a local or shared
    filesystem), else ``fallback``.

    Ray 2.60: ``ray.tune.get_context().get_trial_dir()`` is the trial's directory on storage
    only for the first trial of a trial process. A reused process (``reuse_actors``) gets the
    next trial's *working* directory (``<Ray session>/artifacts/.../working_dirs/<trial>``,
    ``FunctionTrainable.reset_config``), which Tune never uploads: the log files and anything
    else the trial wrote there were lost with Ray's session folder. The session's
    ``StorageContext`` (``ray.train._internal.session``) knows the storage path.
    """
    import os

    try:
        import pyarrow.fs
        from ray.train._internal.session import get_session

        storage = get_session().storage
        if not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
            return fallback
        path = str(storage.trial_fs_path)
    except Exception:  # noqa: BLE001 - another Ray: keep Tune's directory
        return fallback
    os.makedirs(path, exist_ok=True)
    return path
