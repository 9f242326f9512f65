"""Every trial of an experiment, live, in an Optuna journal file (no Ray here).

While an experiment runs, :class:`JournalWriter` appends each trial to
``<experiment dir>/optuna-journal.log`` (Optuna's ``JournalFileBackend``), one study per
experiment named after the experiment directory. It is an open format that Optuna's own API
and optuna-dashboard read, while the run goes on and after, from any machine that sees the
file system; it holds whatever searcher and scheduler ran, not only Optuna.

- A trial is RUNNING from its start, with its sampled values as params and one intermediate
  value per report of the first objective (step = ``training_iteration``).
- It ends COMPLETE with the experiment's scope value of each objective (``tune_config.scope``,
  the value ``results`` ranks it by), PRUNED when a scheduler, a stop condition or the time
  budget stopped it (single objective: with its scope value so far), FAIL when it errored.
- The study's directions follow ``mode``; several metrics make a multi-objective study.
- Each trial carries the Tune trial id in the system attr ``tune_trial_id``. On ``--resume``
  the writer reloads that mapping, so trials already in the journal are continued, not added
  again.

The Tune callback in :mod:`itwinai_ray.backends.ray.journal` feeds the writer; every write
runs on the writer's thread, so Tune's event loop never waits for the file system, and a
journal error is a warning, never the end of the experiment. :func:`~.journal_rebuild.rebuild_journal` writes the journal
of an older experiment from its trials' ``result.json``; :func:`load_study` reads one back
with a one-line error.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ._journal_params import Objectives, compatible, param_entry, to_distribution

logger = logging.getLogger(__name__)

JOURNAL_FILE = "optuna-journal.log"
#: The trial system attr that names the Tune trial.
TUNE_TRIAL_ID = "tune_trial_id"
#: How long the end of an experiment waits for journal writes still queued.
END_TIMEOUT_S = 120.0
RUNNING, COMPLETE, PRUNED, FAIL = "running", "complete", "pruned", "fail"


def journal_path(experiment_dir: str | Path) -> Path:
    """Where an experiment's journal is: ``<experiment_dir>/optuna-journal.log``."""
    return Path(experiment_dir) / JOURNAL_FILE


def study_name(experiment_dir: str | Path) -> str:
    """The experiment's study name: the name of its directory (the experiment's name)."""
    return Path(experiment_dir).resolve().name


#: What Optuna raises replaying a journal with cut, edited or foreign lines.
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, IndexError)


def _storage(path: Path) -> Any:
    """The journal storage of ``path`` (created if missing), replayed once.

    Raises:
        ConfigurationError: Optuna cannot replay the file (one line, naming it).
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except _UNREADABLE as err:
        raise ConfigurationError(f"Cannot read the trial journal {path} "
                                 f"({type(err).__name__}: {err})") from None


def load_study(experiment_dir: str | Path, name: str | None = None) -> Any:
    """The experiment's study, read from its journal (an ``optuna.Study``).

    Raises:
        ConfigurationError: no journal, a journal Optuna cannot read, or no such study in it.
    """
    import optuna

    path = journal_path(experiment_dir)
    name = name or study_name(experiment_dir)
    fix = f"rebuild it with: itwinai-ray results {Path(experiment_dir)} --journal"
    if not path.is_file():
        raise ConfigurationError(f"No trial journal {path} (an experiment from before "
                                 f"journals, or one whose first trial has not started); {fix}.")
    try:
        storage = _storage(path)
    except ConfigurationError as err:
        raise ConfigurationError(f"{err}; {fix}.") from None
    try:
        return optuna.load_study(storage=storage, study_name=name)
    except KeyError:
        raise ConfigurationError(f"The trial journal {path} has no study {name!r}; "
                                 f"{fix}.") from None


class JournalWriter:
    """The journal of one experiment; see the module docstring.

    The ``trial_*`` methods only queue work when the writer runs in the background
    (:meth:`start_in_background`); without it (:meth:`open`) they write at once. After an
    error opening the journal the writer logs a warning and drops everything.
    """

    def __init__(self, experiment_dir: str | Path, objectives: Objectives,
                 name: str | None = None) -> None:
        self.path = journal_path(experiment_dir)
        self.name = name or study_name(experiment_dir)
        self.objectives = objectives
        self.started: set[str] = set()  # trials started, as the caller sees them
        self._ended_ids: set[str] = set()
        self._closed = False
        self._ops: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        # The writer thread's own state:
        self._storage: Any = None
        self._study_id: int | None = None
        self._trials: dict[str, int] = {}  # Tune trial id -> Optuna storage trial id
        self._finished: set[str] = set()
        self._reloaded: set[str] = set()  # trials found in the journal on open (resume)
        self._reports: dict[str, dict[int, dict[str, float]]] = {}
        self._dists: dict[str, Any] = {}  # the study's distribution of each param

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into tuner.pkl: leave the thread, queue and storage out.
        state = dict(self.__dict__)
        state["_ops"] = state["_thread"] = state["_storage"] = None
        return state

    # ---------------------------------------------------------------- the caller's side
    def start_in_background(self) -> None:
        """:meth:`open`, then every later write, on the writer thread."""
        # Import Optuna here, once: a first import racing one on the caller's thread (the
        # search space's distributions, the searcher) fails with KeyError 'optuna.study'.
        import optuna.storages.journal  # noqa: F401
        import optuna.trial  # noqa: F401

        self._ops = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="optuna-journal", daemon=True)
        self._thread.start()
        self._submit(self._open_guarded)

    def trial_started(self, tune_id: str, params: Mapping[str, Any],
                      distributions: Mapping[str, Any], trial_dir: str | None = None) -> None:
        """A trial started (or restarted: recorded once). ``distributions``: param ->
        Optuna distribution or its JSON form; params without one are not recorded.
        ``trial_dir``: where its ``result.json`` is, read if the trial was already in the
        journal (a resumed experiment), so its scope value counts its earlier reports."""
        if tune_id not in self.started:
            self.started.add(tune_id)
            self._submit(self._start_trial, tune_id, dict(params), dict(distributions),
                         trial_dir)

    def trial_reported(self, tune_id: str, step: int, result: Mapping[str, Any]) -> None:
        """One report (``result`` holds the objective metrics) at ``step``."""
        values = self.objectives.of(result)
        if values:
            self._submit(self._report, tune_id, int(step), values)

    def trial_ended(self, tune_id: str, state: str, values: Sequence[float] | None = None,
                    reason: str | None = None, error_file: str | None = None) -> None:
        """The trial ended: :data:`COMPLETE`, :data:`PRUNED` or :data:`FAIL`. ``values``
        default to the objectives' scope values over its reports. A failed trial's
        ``fail_reason`` is ``reason``, else the last line of ``error_file``."""
        if tune_id in self.started and tune_id not in self._ended_ids:
            self._ended_ids.add(tune_id)
            self._submit(self._end_trial, tune_id, state, values, reason, error_file)

    def close(self) -> None:
        """Wait until everything queued is written. Only the first call counts (Tune's
        ``on_experiment_end`` and the driver's clean-up both call it). Trials still
        RUNNING stay so: a resumed experiment continues them."""
        if self._closed:
            return
        self._closed = True
        ops, thread = self._ops, self._thread
        if ops is not None and thread is not None:
            ops.put(None)
            thread.join(timeout=END_TIMEOUT_S)
            if thread.is_alive():
                logger.warning("Journal: still writing %s after %.0f s; not waiting longer "
                               "(it may miss the last trials).", self.path, END_TIMEOUT_S)

    def _submit(self, fn: Any, *args: Any) -> None:
        if self._closed:
            return
        if self._ops is None:
            self._guarded(fn, *args)
        else:
            self._ops.put((fn, args))

    def _serve(self) -> None:
        assert self._ops is not None
        while (op := self._ops.get()) is not None:
            self._guarded(op[0], *op[1])

    def _guarded(self, fn: Any, *args: Any) -> None:
        if self._storage is None and fn != self._open_guarded:
            return  # the journal could not be opened: nothing is written
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - bookkeeping must never fail the experiment
            logger.warning("Journal: %s on %s failed.", getattr(fn, "__name__", fn), self.path,
                           exc_info=True)

    # ---------------------------------------------------------------- the writer thread
    def _open_guarded(self) -> None:
        try:
            self.open()
        except (ConfigurationError, OSError) as err:
            logger.warning("Journal: %s; continuing without it (after the run, write it with "
                           "itwinai-ray results %s --journal).", err, self.path.parent)
            self._storage = None

    def open(self) -> None:
        """Create the study, or load it and which Tune trials it already holds (resume).

        Raises:
            ConfigurationError: the journal exists but cannot be read, or its study's
                directions are not this experiment's.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        storage = _storage(self.path)
        try:
            study_id = storage.get_study_id_from_name(self.name)
        except KeyError:
            _quiet_optuna_storage()
            study_id = storage.create_new_study(self._directions(), self.name)
            # Named objectives (optuna's Study.set_metric_names): the dashboard's axes say
            # "val_loss", not "Objective 0".
            storage.set_study_system_attr(study_id, "study:metric_names",
                                          list(self.objectives.metrics))
        else:
            self._reload(storage, study_id)
        self._storage, self._study_id = storage, study_id

    def _directions(self) -> list[Any]:
        from optuna.study import StudyDirection

        return [StudyDirection[d.upper()] for d in self.objectives.directions]

    def _reload(self, storage: Any, study_id: int) -> None:
        directions = [d.name.lower() for d in storage.get_study_directions(study_id)]
        if directions != self.objectives.directions:
            raise ConfigurationError(
                f"the study {self.name!r} in {self.path} has directions {directions}, this "
                f"experiment {self.objectives.directions}")
        for trial in storage.get_all_trials(study_id, deepcopy=False):
            for key, dist in trial.distributions.items():
                self._dists.setdefault(key, dist)
            tune_id = trial.system_attrs.get(TUNE_TRIAL_ID)
            if tune_id is None:
                continue
            self._trials[tune_id] = trial._trial_id
            self._reloaded.add(tune_id)
            if trial.state.is_finished():
                self._finished.add(tune_id)
            self._reports[tune_id] = {int(step): {self.objectives.metrics[0]: value}
                                      for step, value in trial.intermediate_values.items()}

    def _params(self, params: Mapping[str, Any],
                distributions: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Internal values and distributions of the params this study can hold."""
        values, dists = {}, {}
        for key, spec in distributions.items():
            if key not in params:
                continue
            entry = param_entry(key, params[key], to_distribution(spec))
            if entry is None:
                continue
            known = self._dists.setdefault(key, entry[1])
            if not compatible(known, entry[1]):
                logger.warning("Journal: %s=%r does not fit the study's %s; not recorded.",
                               key, params[key], known)
                continue
            values[key], dists[key] = entry
        return values, dists

    def _start_trial(self, tune_id: str, params: dict[str, Any],
                     distributions: dict[str, Any], trial_dir: str | None) -> None:
        if tune_id in self._trials:  # a resumed experiment continues the trial
            if tune_id in self._reloaded and trial_dir:
                self._seed_reports(tune_id, Path(trial_dir))
            return
        from optuna.trial import FrozenTrial, TrialState

        internal, dists = self._params(params, distributions)
        template = FrozenTrial(
            number=0, state=TrialState.RUNNING, value=None, datetime_start=None,
            datetime_complete=None,
            params={k: dists[k].to_external_repr(v) for k, v in internal.items()},
            distributions=dists, user_attrs={}, system_attrs={TUNE_TRIAL_ID: tune_id},
            intermediate_values={}, trial_id=0)
        template.datetime_start = _now()
        self._trials[tune_id] = self._storage.create_new_trial(self._study_id, template)
        self._reports.setdefault(tune_id, {})

    def _seed_reports(self, tune_id: str, trial_dir: Path) -> None:
        from .results import read_history

        for report in read_history(trial_dir):
            values = self.objectives.of(report)
            step = report.get("training_iteration")
            if values and step is not None:
                self._reports[tune_id].setdefault(int(step), values)

    def _report(self, tune_id: str, step: int, values: dict[str, float]) -> None:
        if tune_id not in self._trials or tune_id in self._finished:
            return
        self._reports.setdefault(tune_id, {})[step] = values
        first = values.get(self.objectives.metrics[0])
        if first is not None:
            self._storage.set_trial_intermediate_value(self._trials[tune_id], step, first)

    def _end_trial(self, tune_id: str, state: str, values: Sequence[float] | None,
                   reason: str | None, error_file: str | None) -> None:
        if tune_id not in self._trials or tune_id in self._finished:
            return
        from optuna.trial import TrialState

        trial_id = self._trials[tune_id]
        if values is None and state in (COMPLETE, PRUNED):
            values = self.objectives.values(self._reports.get(tune_id, {}))
        if state == PRUNED and len(self.objectives.metrics) > 1:
            values = None  # as Optuna: a pruned multi-objective trial has no values
        if state == COMPLETE and values is None:
            state = FAIL
            reason = reason or f"no finite {', '.join(self.objectives.metrics)} reported"
        if state == FAIL:
            values = None
            reason = reason or _last_line(error_file)
            if reason:
                self._storage.set_trial_system_attr(trial_id, "fail_reason", reason[:2000])
        self._storage.set_trial_state_values(trial_id, TrialState[state.upper()],
                                             None if values is None else list(values))
        self._finished.add(tune_id)


class _NoNewStudyLine(logging.Filter):
    """Drops Optuna's "A new study created in Journal" info line: the experiment's terminal
    shows only what itwinai_ray prints (the journal's path is in the README)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("A new study created in Journal")


def _quiet_optuna_storage() -> None:
    storage_logger = logging.getLogger("optuna.storages.journal._storage")
    if not any(isinstance(f, _NoNewStudyLine) for f in storage_logger.filters):
        storage_logger.addFilter(_NoNewStudyLine())


def _last_line(path: str | None) -> str | None:
    """The last non-empty line of a file (a traceback's exception line), if it is readable."""
    if not path:
        return None
    try:
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def _now() -> Any:
    from datetime import datetime

    return datetime.now()


__all__ = ["COMPLETE", "FAIL", "JOURNAL_FILE", "PRUNED", "RUNNING", "TUNE_TRIAL_ID",
           "JournalWriter", "Objectives", "journal_path", "load_study", "study_name"]
