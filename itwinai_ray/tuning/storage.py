"""Checks of the experiment's storage path, run before Ray starts.

An HPO run writes results and checkpoints under ``storage_path`` for hours: a path that cannot
be written, or a disk that is already full, must fail at the start with a message that names
the path and the fix, not after the first hour of training. No Ray import here.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from ..errors import ConfigurationError, ResourceError

#: Default minimum free space (GiB) under storage_path before an experiment starts.
DEFAULT_MIN_FREE_GB = 1.0

_GIB = 1024**3


def check_storage(path: str | os.PathLike[str],
                  min_free_gb: float = DEFAULT_MIN_FREE_GB) -> Path:
    """Create ``path`` if needed, prove it is writable and has ``min_free_gb`` GiB free.

    Writability is tested by writing and deleting a probe file (``os.access`` says yes to
    root even on a read-only mount).

    Returns:
        The absolute path.

    Raises:
        ConfigurationError: the path cannot be created or written.
        ResourceError: less than ``min_free_gb`` GiB are free on its filesystem.
    """
    try:
        target = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
        if "\x00" in str(target):
            raise ValueError("embedded null byte")
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"storage_path {path!r} is not a valid path: {exc}.") from None
    fix = ("Set run_config.storage_path to a writable directory (on a filesystem shared by "
           "all nodes for a multi-node cluster).")
    if target.exists() and not target.is_dir():
        raise ConfigurationError(f"storage_path {str(target)!r} is not a directory. {fix}")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"storage_path {str(target)!r} cannot be created: {_reason(exc)}. {fix}"
        ) from None
    probe = target / f".itwinai-ray-write-test-{uuid.uuid4().hex[:8]}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ResourceError(
                f"storage_path {str(target)!r} is full: {_reason(exc)}. Free some space or "
                f"choose another run_config.storage_path."
            ) from None
        raise ConfigurationError(
            f"storage_path {str(target)!r} is not writable: {_reason(exc)}. {fix}"
        ) from None
    finally:
        probe.unlink(missing_ok=True)
    free = shutil.disk_usage(target).free
    if min_free_gb and free < min_free_gb * _GIB:
        raise ResourceError(
            f"storage_path {str(target)!r} has {free / _GIB:.2f} GiB free, less than the "
            f"{min_free_gb:g} GiB required for results and checkpoints. Free some space, "
            f"choose another run_config.storage_path, or lower run_config.min_free_disk_gb."
        )
    return target


def _reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc}{f' ({name})' if name else ''}"


# ---------------------------------------------------------------- shared storage (multi-node)
#: Set to 1 when storage_path is shared although it looks node-local (e.g. simulated nodes
#: on one host, as in the SLURM tests).
ASSUME_SHARED_ENV = "ITWINAI_RAY_ASSUME_SHARED_STORAGE"
#: Filesystems that are node-local by nature, and directories that are node-local by custom.
_LOCAL_FS_TYPES = {"tmpfs", "ramfs", "devtmpfs"}
_LOCAL_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
#: Network and parallel filesystems: shared by the nodes that mount them.
_SHARED_FS_TYPES = {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "cifs", "smb3",
                    "smbfs", "glusterfs", "fuse.glusterfs", "wekafs", "panfs", "orangefs",
                    "pvfs2", "afs", "fuse.sshfs", "9p", "virtiofs", "fuse.cephfs", "fuse.gcsfuse",
                    "fuse.s3fs", "fuse.juicefs", "quobyte", "fuse.quobyte"}


def filesystem_of(path: str | os.PathLike[str], mounts: str = "/proc/mounts"
                  ) -> tuple[str, str] | None:
    """``(mount point, filesystem type)`` of the mount holding ``path``, or None if unknown."""
    target = os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path))))
    best: tuple[str, str] | None = None
    try:
        with open(mounts) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[2])
    return best


def check_shared_storage(path: str | os.PathLike[str], num_nodes: int,
                         mounts: str = "/proc/mounts") -> str:
    """With more than one node, ``path`` must be on a filesystem that every node sees.

    Trials on other nodes write their results and checkpoints under ``storage_path``, and the
    driver reads them back: on a node-local path each node would see only its own.

    Returns:
        ``"ok"`` (one node, shared filesystem, a URI, or the override), or ``"unknown"`` when
        the filesystem may be node-local (a warning is logged).

    Raises:
        ConfigurationError: the path is node-local (under /tmp, /var/tmp, /dev/shm, /run,
            ``$TMPDIR``, or on tmpfs) and ``$ITWINAI_RAY_ASSUME_SHARED_STORAGE`` is not 1.
    """
    import logging

    text = os.fspath(path)
    if num_nodes <= 1 or "://" in text:
        return "ok"
    if os.environ.get(ASSUME_SHARED_ENV, "").strip().lower() in ("1", "true", "yes"):
        return "ok"
    real = os.path.realpath(os.path.abspath(os.path.expanduser(text)))
    mount = filesystem_of(real, mounts)
    fstype = mount[1] if mount else "unknown"
    local_dirs = [*_LOCAL_DIRS, *([os.environ["TMPDIR"]] if os.environ.get("TMPDIR") else [])]
    under = next((d for d in local_dirs
                  if real == os.path.realpath(d) or real.startswith(os.path.realpath(d) + "/")),
                 None)
    if fstype in _SHARED_FS_TYPES:
        return "ok"
    if under is not None or fstype in _LOCAL_FS_TYPES:
        where = f"under {under}" if under else f"on {fstype} ({mount[0] if mount else '?'})"
        raise ConfigurationError(
            f"run_config.storage_path {real!r} is node-local ({where}), but the Ray cluster "
            f"has {num_nodes} nodes: trials on other nodes would write results and checkpoints "
            f"where the driver cannot read them. Use a directory on a filesystem shared by all "
            f"nodes (your home, project or scratch space), or set {ASSUME_SHARED_ENV}=1 if "
            f"this path is shared."
        )
    logging.getLogger(__name__).warning(
        "run_config.storage_path %r is on a %s filesystem (%s), which may be node-local, and "
        "the Ray cluster has %d nodes. Results and checkpoints of trials on other nodes are "
        "lost unless every node sees this directory. Set %s=1 to silence this warning.",
        real, fstype, mount[0] if mount else "?", num_nodes, ASSUME_SHARED_ENV)
    return "unknown"


__all__ = ["ASSUME_SHARED_ENV", "DEFAULT_MIN_FREE_GB", "check_shared_storage", "check_storage",
           "filesystem_of"]


def _holds_experiment(directory: Path) -> bool:
    """Whether an earlier run left a Tune experiment here (its state, not just our files)."""
    return (directory / "tuner.pkl").exists() or any(directory.glob("experiment_state-*.json"))


def fresh_experiment_name(storage_path: str | os.PathLike[str], name: str) -> str:
    """``name``, or ``name-2``, ``name-3``, ... when an earlier run already holds ``name``.

    A run without ``--resume`` never puts its trials beside another run's in one directory;
    continuing that one is ``--resume`` (``run_config.resume``).
    """
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(storage_path))))
    candidate, n = name, 1
    while _holds_experiment(root / candidate):
        n += 1
        candidate = f"{name}-{n}"
    return candidate
