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
    target = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    fix = ("Set run_config.storage_path to a writable directory (on a filesystem shared by "
           "all nodes for a multi-node cluster).")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"storage_path {str(target)!r} cannot be created: {_reason(exc)}. {fix}"
        ) from None
    if not target.is_dir():
        raise ConfigurationError(f"storage_path {str(target)!r} is not a directory. {fix}")
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


__all__ = ["DEFAULT_MIN_FREE_GB", "check_storage"]
