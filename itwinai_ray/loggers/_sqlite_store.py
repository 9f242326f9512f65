"""New MLflow sqlite stores start from a migrated empty one, made once per MLflow version.

Opening a *new* sqlite store runs MLflow's whole schema migration (alembic, dozens of
revisions): about 2 s on an idle 2-core box, 4 s under load, for every experiment and
standalone run. The migrated empty database is the same every time, so it is made once,
kept in the user's cache (``$XDG_CACHE_HOME/itwinai_ray``, else ``~/.cache/itwinai_ray``),
and copied. Anything unusual (no cache dir, a copy that fails) falls back to MLflow's own
migration; an existing store is never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "itwinai_ray"


def _template() -> Path:
    """The migrated empty store for the installed MLflow (made on first use)."""
    import mlflow
    from mlflow import MlflowClient

    path = cache_dir() / f"mlflow-{mlflow.__version__}-empty.db"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".db.tmp")
    os.close(fd)
    os.unlink(tmp)  # MLflow creates (and migrates) it
    try:
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()
        os.replace(tmp, path)  # atomic: a concurrent maker's copy is as good
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def seed_new_store(db: Path) -> bool:
    """If ``db`` does not exist yet, make it a copy of the migrated empty store whose Default
    experiment's artifact location is where MLflow would put it now (``./mlruns/0``). Returns
    True if seeded. Call it under the store's file lock."""
    if db.exists():
        return False
    tmp = db.with_name(db.name + ".seeding")
    try:
        shutil.copyfile(_template(), tmp)
        with sqlite3.connect(tmp) as conn:
            conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                         ((Path.cwd() / "mlruns" / "0").resolve().as_uri(),))
        conn.close()
        os.replace(tmp, db)
        return True
    except Exception:  # noqa: BLE001 - MLflow migrates a new store itself
        logger.debug("Could not seed %s from the cached empty store", db, exc_info=True)
        tmp.unlink(missing_ok=True)
        return False
