"""Start Horovod's gloo rendezvous over an existing torch.distributed process group.

Under ``horovodrun`` the launcher sets the ``HOROVOD_*`` variables. Where processes come from
another launcher that has already created a torch.distributed group (Ray Train V2 workers,
torchrun), this module does what Ray V1's Horovod backend did from its driver
(``ray/train/horovod/config.py``, ``horovod/ray/runner.py``), from rank 0 of the group instead:

1. every rank tells its host name and local rank (``all_gather_object``);
2. rank 0 builds Horovod's host allocation plan, starts a :class:`RendezvousServer` in a
   thread of its own process and sends every rank its slot and the server's address;
3. each rank sets ``HOROVOD_RANK``/``SIZE``/``LOCAL_*``/``CROSS_*``, ``HOROVOD_HOSTNAME``,
   ``HOROVOD_GLOO_RENDEZVOUS_ADDR``/``PORT``, ``HOROVOD_CONTROLLER=gloo`` and
   ``HOROVOD_CPU_OPERATIONS=gloo``; then ``hvd.init()`` can run.

So each trial of an HPO run (one worker group) gets its own rendezvous, and no Ray API is used.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

import torch.distributed as dist

#: Variables set for hvd.init(); restored by :meth:`Rendezvous.stop`.
HOROVOD_VARS = ("HOROVOD_RANK", "HOROVOD_SIZE", "HOROVOD_LOCAL_RANK", "HOROVOD_LOCAL_SIZE",
                "HOROVOD_CROSS_RANK", "HOROVOD_CROSS_SIZE", "HOROVOD_HOSTNAME",
                "HOROVOD_GLOO_RENDEZVOUS_ADDR", "HOROVOD_GLOO_RENDEZVOUS_PORT",
                "HOROVOD_CONTROLLER", "HOROVOD_CPU_OPERATIONS", "HOROVOD_GLOO_IFACE")


def launched_by_horovod(environ: Any = None) -> bool:
    """True under horovodrun (or anything else that already set the rendezvous variables)."""
    env = os.environ if environ is None else environ
    return "HOROVOD_RANK" in env and "HOROVOD_GLOO_RENDEZVOUS_ADDR" in env


def _local_address(peer: str) -> str:
    """This host's address on the route to ``peer`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((peer, 9))
            return sock.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _iface_of(address: str) -> str | None:
    """The network interface that holds ``address`` (gloo binds to it), if psutil knows."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with ray
        return None
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == address for a in addrs):
            return name
    return None


@dataclass
class Rendezvous:
    """The rendezvous of one group: the server (rank 0 only) and the variables it set."""

    server: Any = None
    saved_env: dict[str, str | None] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop the server (rank 0) and restore the variables."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.saved_env = {}


def start_rendezvous(master_addr: str | None = None) -> Rendezvous:
    """Set the HOROVOD_* variables of this rank from the torch.distributed group.

    Collective: every rank of the default group must call it. ``master_addr`` (default:
    ``$MASTER_ADDR``, else this host) is an address of rank 0's host that the others reach.
    """
    from horovod.runner.common.util import hosts
    from horovod.runner.http.http_server import RendezvousServer

    rank, world = dist.get_rank(), dist.get_world_size()
    host = socket.gethostname()
    names: list[Any] = [None] * world
    dist.all_gather_object(names, host)
    local_rank = names[:rank].count(host)
    rendezvous = Rendezvous()
    payload: list[Any] = [None]
    if rank == 0:
        order = list(dict.fromkeys(names))  # hosts in order of their first rank
        plan = hosts.get_host_assignments(
            [hosts.HostInfo(h, names.count(h)) for h in order], world)
        rendezvous.server = RendezvousServer(verbose=0)
        port = rendezvous.server.start()
        rendezvous.server.init(plan)
        addr = master_addr or os.environ.get("MASTER_ADDR") or _local_address("8.8.8.8")
        slots = {(s.hostname, s.local_rank): s for s in plan}
        payload = [{"addr": addr, "port": port,
                    "slots": {f"{k[0]}:{k[1]}": (s.rank, s.local_rank, s.local_size,
                                                  s.cross_rank, s.cross_size)
                              for k, s in slots.items()}}]
    dist.broadcast_object_list(payload, src=0)
    info = payload[0]
    hvd_rank, lrank, lsize, crank, csize = info["slots"][f"{host}:{local_rank}"]
    env = {
        "HOROVOD_RANK": hvd_rank, "HOROVOD_SIZE": world,
        "HOROVOD_LOCAL_RANK": lrank, "HOROVOD_LOCAL_SIZE": lsize,
        "HOROVOD_CROSS_RANK": crank, "HOROVOD_CROSS_SIZE": csize,
        "HOROVOD_HOSTNAME": host,
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": info["addr"],
        "HOROVOD_GLOO_RENDEZVOUS_PORT": info["port"],
        "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo",
    }
    iface = _iface_of(_local_address(info["addr"]))
    if iface and "HOROVOD_GLOO_IFACE" not in os.environ:
        env["HOROVOD_GLOO_IFACE"] = iface
    for key, value in env.items():
        rendezvous.saved_env[key] = os.environ.get(key)
        os.environ[key] = str(value)
    return rendezvous
