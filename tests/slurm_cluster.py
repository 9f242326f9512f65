"""A real SLURM with two nodes on this machine: munge, slurmctld and ``slurmd -N n1/n2``.

n1 and n2 are both this host, with NodeAddr 127.0.0.1 and 127.0.0.2, so Ray sees two nodes
with two IPs. Everything (config, state, spool, logs) lives in one temporary directory; only
the daemons started here are stopped, by their PIDs. Needs root and Debian's
``slurmctld slurmd slurm-client munge`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "munged")
NODES = (("n1", "127.0.0.1"), ("n2", "127.0.0.2"))
CPUS_PER_NODE = 1


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def unavailable_reason() -> str | None:
    """Why a SLURM cannot be started here, or None."""
    missing = missing_binaries()
    if missing:
        return (f"SLURM binaries not found: {', '.join(missing)} (apt-get install -y "
                f"--no-install-recommends slurmctld slurmd slurm-client munge)")
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        if cred.returncode:
            return False
        return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True,
                              timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; ``env`` is what sbatch needs."""

    root: Path
    conf: Path = field(init=False)
    pids: list[int] = field(default_factory=list)
    started_munge: int | None = None

    def __post_init__(self) -> None:
        self.conf = self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def _write_conf(self) -> None:
        host = socket.gethostname().split(".")[0]
        ctld_port, *node_ports = _free_ports(1 + len(NODES))
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        lines = [
            "ClusterName=itwinai",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "MpiDefault=none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            # MinJobAge: without it `sbatch --wait` polls only every 32 s.
            "ReturnToService=2", "KillWait=5", "MinJobAge=5", "InactiveLimit=0",
            # Requeue (test_slurm's time-limit test): a requeued job may start again only
            # cred_expire + 1 s later (default 120 s; 5 is the least), and a pending job
            # waits for the next scheduling pass (default every 60 s; backfill 30 s).
            "JobRequeue=1", "AuthInfo=cred_expire=10",
            "SchedulerParameters=sched_interval=2,bf_interval=2",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}/%n",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd-%n.log'}",
        ]
        for (name, addr), port in zip(NODES, node_ports):
            lines.append(f"NodeName={name} NodeHostname={host} NodeAddr={addr} Port={port} "
                         f"CPUs={CPUS_PER_NODE} RealMemory=1000 State=UNKNOWN")
        lines.append("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")

    def _start_munge(self) -> None:
        if _munge_works():
            return
        run = Path("/run/munge")
        run.mkdir(parents=True, exist_ok=True)
        shutil.chown(run, "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True, timeout=30)
        pidfile = run / "munged.pid"
        deadline = time.monotonic() + 10
        while not _munge_works():
            if time.monotonic() > deadline:
                raise RuntimeError("munged started but munge -n | unmunge fails")
            time.sleep(0.1)
        if pidfile.is_file():
            self.started_munge = int(pidfile.read_text().split()[0])

    def _daemon(self, *cmd: str) -> None:
        proc = subprocess.Popen([*cmd, "-D", "-f", str(self.conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, **self.env}, start_new_session=True)
        self.pids.append(proc.pid)

    def run(self, *cmd: str, timeout: float = 30, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env}, check=check)

    def start(self, timeout_s: float = 60) -> SlurmCluster:
        self._write_conf()
        self._start_munge()
        self._daemon("slurmctld", "-c")
        for name, _ in NODES:
            self._daemon("slurmd", "-N", name)
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.run("sinfo", "-h", "-t", "idle", "-o", "%D", check=False).stdout.strip()
            if out == str(len(NODES)):
                return self
            if time.monotonic() > deadline:
                log = (self.root / "log" / "slurmctld.log")
                tail = log.read_text()[-2000:] if log.is_file() else ""
                self.stop()
                raise RuntimeError(f"SLURM nodes not idle after {timeout_s} s "
                                   f"(sinfo: {out!r}). slurmctld log:\n{tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 10
        for pid in self.pids:
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.pids.clear()
        if self.started_munge:
            try:
                os.kill(self.started_munge, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.started_munge = None
