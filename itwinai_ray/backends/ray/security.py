"""Securing the local Ray instance that :func:`~itwinai_ray.backends.ray.driver.ensure_ray`
starts, for nodes shared with other users.

What Ray 2.60 does by itself (``ray/_private/worker.py``, ``authentication_token_setup.py``):
a new local ``ray.init()`` turns token auth on unless ``RAY_AUTH_MODE`` is set, and writes a
missing token to ``~/.ray/auth_token`` with the process umask (often world-readable). It
creates its session directory (``/tmp/ray/session_*``: logs, sockets, spilled objects) and
``chmod``s every directory it makes to 0777 (``ray/_common/utils.py``).

What this module adds before ``ray.init``:

- token auth stays on: Ray turns it on for a new local instance when ``RAY_AUTH_MODE`` is
  unset; ``RAY_AUTH_MODE=disabled`` (set on purpose by the user) gets a warning;
- the token file (``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) created, or tightened,
  to mode 0600 in a 0700 directory; a token given as ``$RAY_AUTH_TOKEN`` is left as it is;
- a fresh session root of mode 0700 (``ir-XXXXXXXX`` under ``$RAY_TMPDIR`` or the
  system temp dir), so Ray's 0777 directories inside it cannot be reached by others;
- no orphans (:mod:`.reaper`): a watchdog stops the instance's processes and removes the
  root when the driver is killed, and each start reaps the roots of killed drivers.

The dashboard is bound to 127.0.0.1 by ``ensure_ray``. No Ray import here.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from itwinai_ray._fs import remove_tree
from itwinai_ray.backends.ray import reaper

logger = logging.getLogger(__name__)

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"

_temp_dirs: list[str] = []  # session roots made by secure_local_start, removed by shutdown


def token_path() -> Path:
    """Where Ray reads the token from when ``$RAY_AUTH_TOKEN`` is not set."""
    configured = os.environ.get(TOKEN_PATH_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".ray" / "auth_token"


def ensure_private_token() -> Path | None:
    """Create the token file if missing, and make it (and its directory) owner-only.

    Returns:
        The token file, or None when the token comes from ``$RAY_AUTH_TOKEN``.
    """
    if os.environ.get(TOKEN_ENV):
        return None
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.name == ".ray":  # Ray's own directory: keep it private too
        os.chmod(path.parent, 0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))  # as ray's generate_new_authentication_token
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)
    return path


def secure_local_start() -> str:
    """Prepare token auth and a private session root; return the ``_temp_dir`` for Ray."""
    if os.environ.get(AUTH_MODE_ENV, "").lower() == "disabled":
        logger.warning("%s=disabled: the local Ray instance accepts any client that can reach "
                       "its ports. Unset it to use token authentication.", AUTH_MODE_ENV)
    else:
        # Unset, Ray's ray.init turns token auth on itself (and refreshes its cached config,
        # which a plain os.environ write here would not); set to "token", Ray keeps it.
        ensure_private_token()
    base = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    # Mode 0700. Short names: Ray's unix socket paths below it (session_<date>_<time>_<pid>/
    # sockets/plasma_store) must stay below 108 characters.
    reaper.reap_stale(base)
    root = tempfile.mkdtemp(prefix=reaper.ROOT_PREFIX, dir=base)
    _temp_dirs.append(root)
    try:
        reaper.guard(root)
    except (OSError, ImportError) as exc:  # not fatal: the next start still reaps the root
        logger.warning("Could not start the watchdog of the local Ray instance (%s): if this "
                       "process is killed, Ray's processes may outlive it.", exc)
    return os.path.join(root, "r")  # Ray makes this one 0777; its 0700 parent guards it


def session_dirs() -> list[str]:
    """The Ray session directories (``session_<...>``) under the roots made here."""
    found = []
    for root in _temp_dirs:
        ray_dir = os.path.join(root, "r")
        if os.path.isdir(ray_dir):
            found += [os.path.join(ray_dir, d) for d in sorted(os.listdir(ray_dir))
                      if d.startswith("session_") and d != "session_latest"]
    return found


#: How long removing a session root keeps trying while Ray's last processes exit.
REMOVE_TIMEOUT_S = 15.0


def remove_temp_dir() -> None:
    """Delete the session roots made by :func:`secure_local_start` (Ray has stopped).

    ``ray.shutdown()`` returns while some of Ray's processes are still exiting and may still
    write logs there: a file created while the tree is being removed makes its directory
    survive, so a root that survives is removed again, for up to :data:`REMOVE_TIMEOUT_S`;
    then a warning names what is left."""
    while _temp_dirs:
        root = _temp_dirs.pop()
        if not remove_tree(root, REMOVE_TIMEOUT_S):
            logger.warning("Could not remove Ray's session files at %s; remove them by hand.",
                           root)
        reaper.stop_watchdog(root)
