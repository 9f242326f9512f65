"""Wait until named nodes have joined a Ray cluster (used by ``scripts/slurm_ray.sh``).

The launcher starts one Ray node per SLURM node with ``--node-name=<SLURM node name>`` and
then runs::

    python3 -m itwinai_ray.backends.ray.nodes wait --address IP:PORT --timeout 180 n1 n2

which polls the cluster's GCS (no ``ray.init``, so no job is registered) until every named
node is alive. On timeout it names the missing nodes, writes them to ``--missing-file`` and
exits 1. Authentication follows the environment (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN_PATH``),
as for every Ray process.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

_POLL_S = 0.25
_RPC_TIMEOUT_S = 5
#: gRPC status codes of a refused token (UNAUTHENTICATED, PERMISSION_DENIED).
_AUTH_CODES = (16, 7)


def _not_up_yet(exc: Exception) -> bool:
    """Whether ``exc`` means "the GCS is not up yet" (an RPC timeout or an unreachable
    address: retry) rather than an error that waiting does not mend (authentication)."""
    from ray.exceptions import AuthenticationError, RpcError

    if isinstance(exc, AuthenticationError):
        return False
    if isinstance(exc, RpcError):
        return exc.rpc_code not in _AUTH_CODES
    return isinstance(exc, (ConnectionError, TimeoutError))


def alive_node_names(address: str) -> dict[str, str]:
    """``{node name: node IP}`` of the alive nodes of the cluster whose GCS is ``address``."""
    from itwinai_ray.backends.ray import _private

    return _private.alive_nodes(address, _RPC_TIMEOUT_S)


def wait_for_nodes(address: str, names: Sequence[str], timeout_s: float) -> list[str]:
    """Poll until every node in ``names`` is alive; return the missing names (empty: all up)."""
    deadline = time.monotonic() + timeout_s
    missing = list(names)
    while True:
        try:
            alive = alive_node_names(address)
        except Exception as exc:  # noqa: BLE001 - narrowed by _not_up_yet
            if not _not_up_yet(exc):
                raise
            alive = {}  # GCS not answering yet: retry until the deadline
        missing = [n for n in names if n not in alive]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(_POLL_S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m itwinai_ray.backends.ray.nodes")
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait", help="wait until the named nodes are alive")
    wait.add_argument("--address", required=True, help="GCS address IP:PORT")
    wait.add_argument("--timeout", type=float, default=180.0, help="seconds (default 180)")
    wait.add_argument("--missing-file", default=None,
                      help="on timeout, write the missing node names here")
    wait.add_argument("nodes", nargs="+", help="node names (ray start --node-name)")
    args = parser.parse_args(argv)
    missing = wait_for_nodes(args.address, args.nodes, args.timeout)
    if not missing:
        return 0
    if args.missing_file:
        with open(args.missing_file, "w") as fh:
            fh.write(" ".join(missing) + "\n")
    print(f"error: {len(args.nodes) - len(missing)} of {len(args.nodes)} nodes joined the Ray "
          f"cluster at {args.address} within {args.timeout:g} s; missing: "
          f"{', '.join(missing)}.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
