"""Small filesystem helpers shared by the package (no heavy imports)."""

from __future__ import annotations

import os
import shutil
import time


def remove_tree(path: str, timeout_s: float) -> bool:
    """Delete the tree at ``path``; True when it is gone.

    A file that another process creates while the tree is being removed makes its directory
    survive ``shutil.rmtree``, so a surviving tree is removed again, every 0.2 s, for up to
    ``timeout_s`` (e.g. while Ray's last processes exit).
    """
    deadline = time.monotonic() + timeout_s
    shutil.rmtree(path, ignore_errors=True)
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.2)
        shutil.rmtree(path, ignore_errors=True)
    return not os.path.exists(path)
