"""MLflow runs of an HPO experiment: one parent run, one child run per trial (no Ray here).

:class:`ExperimentRuns` is driven by the Tune callback in
:mod:`itwinai_ray.backends.ray.mlflow_callback`: the parent run opens when the experiment starts, each
trial gets a child run (its sampled params, then every reported result as metric history,
step = ``training_iteration``), and each child is closed with the trial's outcome:
``FINISHED``, ``KILLED`` (stopped early by the scheduler, or never finished because the
experiment ended) or ``FAILED``. Settings come from YAML (``run_config.mlflow``):

- ``true`` (default) / ``false``: on with defaults / off;
- a mapping: ``tracking_uri`` (default ``sqlite:///<experiment dir>/mlflow.db``),
  ``experiment_name`` (default: the experiment's name), ``tags``.

Bookkeeping never fails the experiment: MLflow errors are logged as warnings.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..loggers.mlflow import PARENT_RUN_TAG, MLFlowLogger

logger = logging.getLogger(__name__)

TRIAL_TAG = "itwinai_ray.trial_id"
ROLE_TAG = "itwinai_ray.role"
#: How long the end of an experiment waits for MLflow writes still queued.
END_TIMEOUT_S = 300.0
#: Ray's bookkeeping keys: not metrics.
_NOT_METRICS = {"done", "training_iteration", "timestamp", "pid", "time_since_restore",
                "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint",
                "trial_id", "experiment_tag", "date", "hostname", "node_ip"}


@dataclass(frozen=True)
class MlflowSettings:
    """Where the experiment's MLflow runs go."""

    enabled: bool = True
    tracking_uri: str | None = None
    experiment_name: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_any(cls, value: Any) -> MlflowSettings:
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(enabled=False)
        if isinstance(value, MlflowSettings):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"run_config.mlflow must be true, false or a mapping with tracking_uri, "
                f"experiment_name, tags; got {type(value).__name__}."
            )
        allowed = ("enabled", "tracking_uri", "experiment_name", "tags")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise ConfigurationError(
                f"Unknown key '{unknown[0]}' in run_config.mlflow. Accepted keys: "
                f"{', '.join(allowed)}."
            )
        return cls(**{k: v for k, v in value.items() if v is not None})

    def resolved(self, experiment_dir: str | Path, name: str) -> MlflowSettings:
        """With the defaults filled in: the sqlite store under the experiment directory."""
        uri = self.tracking_uri or f"sqlite:///{Path(experiment_dir).resolve() / 'mlflow.db'}"
        return MlflowSettings(enabled=self.enabled, tracking_uri=uri,
                              experiment_name=self.experiment_name or name, tags=self.tags)


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric metrics of a Tune result (Ray's bookkeeping keys left out)."""
    out = {}
    for key, value in result.items():
        if key in _NOT_METRICS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[str(key)] = float(value)
    return out


class ExperimentRuns:
    """The parent run of one experiment and the child runs of its trials.

    Every MLflow call runs, in order, on one background thread (:meth:`start_in_background`):
    the Tune callbacks only queue work, so Tune's event loop never waits for MLflow (its
    import, a schema migration, a remote tracking server's round trips). Without the thread
    (:meth:`start`), the calls run where they are made. :meth:`end` drains the queue.
    """

    def __init__(self, settings: MlflowSettings, experiment_dir: str | Path, name: str,
                 params: Mapping[str, Any] | None = None) -> None:
        self.settings = settings.resolved(experiment_dir, name)
        self.experiment_dir = Path(experiment_dir)
        self.name = name
        self.params = dict(params or {})
        self.parent: MLFlowLogger | None = None
        self.trial_runs: dict[str, str] = {}  # trial id -> run id (the MLflow thread's)
        self._open: set[str] = set()  # trials whose run is open, as the driver sees them
        self._ops: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._params: dict[str, dict[str, Any]] = {}  # trial id -> params (the MLflow thread's)
        self._ended = False

    @property
    def parent_run_id(self) -> str | None:
        return self.parent.run_id if self.parent is not None else None

    @property
    def client(self) -> Any:
        return self.parent.client if self.parent is not None else None

    def start(self) -> None:
        """Create (or reuse) the MLflow experiment and open the parent run."""
        self.parent = MLFlowLogger(
            savedir=self.experiment_dir, experiment_name=self.settings.experiment_name,
            tracking_uri=self.settings.tracking_uri, run_name=self.name,
            tags={**self.settings.tags, ROLE_TAG: "experiment"})
        self.parent.create_logger_context(rank=0)
        if self.params:
            self.parent.save_hyperparameters(self.params)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into tuner.pkl: leave the thread and its queue out.
        state = dict(self.__dict__)
        state["_ops"] = state["_thread"] = None
        return state

    def start_in_background(self) -> None:
        """:meth:`start`, then every later call, on the MLflow thread. Opening a new store
        takes seconds (``import mlflow``), which overlap with the first trials' start-up.
        Failures are logged, never raised: the experiment goes on without MLflow."""
        self._ops = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="mlflow-runs", daemon=True)
        self._thread.start()
        self._submit(self._start_guarded)

    def _start_guarded(self) -> None:
        try:
            self.start()
        except Exception:  # noqa: BLE001 - an unreachable server must not stop the run
            logger.warning("MLflow: could not open the experiment's parent run at %s; "
                           "continuing without MLflow.", self.settings.tracking_uri,
                           exc_info=True)
            self.parent = None

    def _serve(self) -> None:
        assert self._ops is not None
        while True:
            op = self._ops.get()
            if op is None:
                return
            fn, args = op
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - bookkeeping must never fail the experiment
                logger.warning("MLflow: %s failed.", getattr(fn, "__name__", fn),
                               exc_info=True)

    def _submit(self, fn: Any, *args: Any) -> None:
        if self._ended:  # after end(): nothing more is written, from any thread
            return
        if self._ops is None:
            fn(*args)
        else:
            self._ops.put((fn, args))

    @property
    def _active(self) -> bool:
        return self.parent is not None and self.parent.is_active

    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> None:
        """Open the trial's child run (once; a retried trial reopens its run)."""
        if trial_id not in self._open:
            self._open.add(trial_id)
            self._submit(self._open_trial_run, trial_id, dict(params))

    def _open_trial_run(self, trial_id: str, params: dict[str, Any]) -> None:
        self._params[trial_id] = params
        if not self._active:
            return
        if trial_id in self.trial_runs:
            self._guard(self.client.update_run, self.trial_runs[trial_id], "RUNNING")
            return
        tags = {**{str(k): str(v) for k, v in self.settings.tags.items()},
                PARENT_RUN_TAG: self.parent_run_id, TRIAL_TAG: trial_id, ROLE_TAG: "trial"}
        run = self._guard(self.client.create_run, self.parent.experiment_id, tags=tags,
                          run_name=trial_id)
        if run is None:
            return
        run_id = run.info.run_id
        self.trial_runs[trial_id] = run_id
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        if items:
            self._guard(self.client.log_batch, run_id, params=items)

    def trial_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """Log one reported result as metrics at step ``training_iteration``."""
        step = int(result.get("training_iteration", 0) or 0)
        stamp = int(float(result.get("timestamp", 0) or 0) * 1000)
        self._submit(self._log_result, trial_id, metrics_of(result), step, stamp)

    def _log_result(self, trial_id: str, metrics: dict[str, float], step: int,
                    stamp: int) -> None:
        if trial_id not in self.trial_runs and trial_id in self._params:
            self._open_trial_run(trial_id, self._params[trial_id])  # creating it had failed
        run_id = self.trial_runs.get(trial_id)
        if run_id is None or not metrics:
            return
        from mlflow.entities import Metric

        items = [Metric(k, v, stamp, step) for k, v in metrics.items()]
        self._guard(self.client.log_batch, run_id, metrics=items)

    def trial_ended(self, trial_id: str, status: str) -> None:
        """Close the trial's run: ``FINISHED``, ``KILLED`` or ``FAILED``."""
        if trial_id in self._open:
            self._open.discard(trial_id)
            self._submit(self._close_trial_run, trial_id, status)

    def _close_trial_run(self, trial_id: str, status: str) -> None:
        if trial_id in self.trial_runs and self._active:
            self._guard(self.client.set_terminated, self.trial_runs[trial_id], status=status)

    def end(self, status: str = "FINISHED") -> None:
        """Close runs still open (as KILLED) and the parent run (with ``status``), then wait
        until the MLflow thread has done everything queued. Only the first call counts (Tune's
        ``on_experiment_end`` and the driver's clean-up both call it)."""
        if self._ended:
            return
        for trial_id in list(self._open):
            self.trial_ended(trial_id, "KILLED")
        self._submit(self._end_parent, status)
        self._ended = True
        ops, thread = self._ops, self._thread
        if ops is not None and thread is not None:
            ops.put(None)
            thread.join(timeout=END_TIMEOUT_S)
            if thread.is_alive():  # e.g. an unreachable tracking server, retrying
                logger.warning("MLflow: still writing after %.0f s; not waiting longer (the "
                               "runs of this experiment may be incomplete).", END_TIMEOUT_S)

    def _end_parent(self, status: str) -> None:
        if self._active:
            try:
                self.parent.destroy_logger_context(status)
            except Exception:  # noqa: BLE001 - bookkeeping must never fail the experiment
                logger.warning("MLflow: could not close the parent run.", exc_info=True)

    def _guard(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - bookkeeping must never fail the experiment
            logger.warning("MLflow: %s failed.", getattr(fn, "__name__", fn), exc_info=True)
            return None
