"""MLflow logger built on :class:`mlflow.MlflowClient` with explicit run ids.

No global active-run state is used, so several trials may log from one process. mlflow is
imported only when the context is opened.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from itwinai_ray.errors import ConfigurationError, MissingDependencyError
from itwinai_ray.loggers._sqlite_store import seed_new_store
from itwinai_ray.loggers.base import LogFreq, Logger, write_item

PARENT_RUN_TAG = "mlflow.parentRunId"
_MAX_PARAM_VAL_LENGTH = 6000  # MLflow 2.x/3.x limit; read from mlflow when available
_MAX_PARAMS_PER_BATCH = 100
_REMOTE_SCHEMES = ("http://", "https://", "databricks")


class MLFlowLogger(Logger):
    """Log to an MLflow tracking store.

    Args:
        savedir: local directory; holds the default sqlite store ``mlflow.db`` and the
            default artifact root ``artifacts/``.
        experiment_name: experiment to create or reuse.
        tracking_uri: any MLflow URI; default ``sqlite:///<abs savedir>/mlflow.db`` (MLflow 3
            refuses a plain file store).
        run_name: name of a new run.
        run_id: resume this existing run instead of creating one.
        parent_run_id: create the run as a child of this run (tag ``mlflow.parentRunId``).
        tags: extra run tags.
        artifact_location: artifact root for a newly created experiment; default
            ``<abs savedir>/artifacts`` for local stores, the server's choice for remote ones.
    """

    def __init__(
        self,
        savedir: str | Path = "mlruns",
        experiment_name: str = "itwinai-ray",
        tracking_uri: str | None = None,
        run_name: str | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        log_freq: LogFreq = "epoch",
        log_on_workers: int | list[int] = 0,
        artifact_location: str | None = None,
    ) -> None:
        # Resolve now, on the driver: Ray trials may change the worker's working directory.
        super().__init__(
            savedir=Path(savedir).resolve(), log_freq=log_freq, log_on_workers=log_on_workers
        )
        if not experiment_name:
            raise ConfigurationError("MLFlowLogger needs a non-empty `experiment_name`.")
        if run_id is not None and parent_run_id is not None:
            raise ConfigurationError(
                "MLFlowLogger: give either `run_id` (resume a run) or `parent_run_id` "
                "(create a child run), not both."
            )
        self.experiment_name = experiment_name
        self._default_store = tracking_uri is None
        self.tracking_uri = tracking_uri or f"sqlite:///{self.savedir / 'mlflow.db'}"
        self.run_name = run_name
        self.run_id = run_id
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        if artifact_location is None and not self.tracking_uri.startswith(_REMOTE_SCHEMES):
            artifact_location = (self.savedir / "artifacts").as_uri()
        self.artifact_location = artifact_location
        self.experiment_id: str | None = None
        self.client: Any = None
        self._resume_id = run_id

    def _runtime_attrs(self) -> tuple[str, ...]:
        return ("client",)

    # ----- lifecycle ---------------------------------------------------------------------
    def _open(self, rank: int, **kwargs: Any) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError as exc:
            raise MissingDependencyError("mlflow", "MLFlowLogger") from exc
        if self._default_store:
            self.savedir.mkdir(parents=True, exist_ok=True)
        with self._store_lock():
            # Several trials or ranks opening a new sqlite store at once race in MLflow's
            # schema migration; one at a time per store file.
            if self.tracking_uri.startswith("sqlite:///"):
                seed_new_store(Path(self.tracking_uri[len("sqlite:///"):]))
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            self.experiment_id = self._get_or_create_experiment()
        if self._resume_id is not None:
            self.run_id = self._resume_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        tags = {str(k): str(v) for k, v in self.tags.items()}
        if self.parent_run_id is not None:
            tags[PARENT_RUN_TAG] = self.parent_run_id
        if rank != 0 or self.log_on_workers != 0:
            tags.setdefault("itwinai_ray.rank", str(rank))
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.run_name)
        self.run_id = run.info.run_id

    def _store_lock(self) -> Any:
        """A file lock beside a local sqlite store; a no-op for other stores."""
        import contextlib

        if not self.tracking_uri.startswith("sqlite:///"):
            return contextlib.nullcontext()
        from filelock import FileLock

        db = Path(self.tracking_uri[len("sqlite:///"):])
        db.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(db) + ".lock", timeout=600)

    def _get_or_create_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(
                self.client.create_experiment(
                    self.experiment_name, artifact_location=self.artifact_location
                )
            )
        except MlflowException:  # another trial created it meanwhile
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def _close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)

    # ----- logging -----------------------------------------------------------------------
    def _log_metric(
        self, name: str, value: float, step: int | None, batch_idx: int | None
    ) -> None:
        self.client.log_metric(self.run_id, name, value, step=step or 0)

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        try:
            from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH as limit
        except ImportError:  # pragma: no cover - older/newer mlflow layout
            limit = _MAX_PARAM_VAL_LENGTH
        items = [Param(str(k), _truncate(str(v), limit)) for k, v in params.items()]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _MAX_PARAMS_PER_BATCH])

    def _log_object(self, kind: str, item: Any, identifier: str, step: int | None) -> None:
        if kind == "dict":
            self.client.log_dict(self.run_id, item, identifier)
        elif kind == "text":
            self.client.log_text(self.run_id, str(item), identifier)
        elif kind == "figure":
            name = identifier if Path(identifier).suffix else f"{identifier}.png"
            self.client.log_figure(self.run_id, item, name)
        elif kind == "artifact":
            source = Path(item)
            if not source.exists():
                raise ConfigurationError(
                    f"Cannot log artifact '{source}': no such file or directory."
                )
            if source.is_dir():
                self.client.log_artifacts(self.run_id, str(source), artifact_path=identifier)
            else:
                self.client.log_artifact(self.run_id, str(source), artifact_path=identifier)
        else:  # torch: save under the identifier's file name, upload into its directory
            target = Path(identifier)
            with tempfile.TemporaryDirectory() as tmp:
                path = write_item(kind, item, Path(tmp) / target.name)
                parent = str(target.parent) if str(target.parent) != "." else None
                self.client.log_artifact(self.run_id, str(path), artifact_path=parent)


def _truncate(value: str, limit: int) -> str:
    """Cut ``value`` to ``limit`` characters, marking the cut."""
    if len(value) <= limit:
        return value
    marker = "...[truncated]"
    return value[: limit - len(marker)] + marker
