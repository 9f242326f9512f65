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
