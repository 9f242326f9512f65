"""Signals to the driver (fast tier: no Ray; real signals to this process)."""

from __future__ import annotations

import os
import signal

import pytest

from itwinai_ray.tuning import interrupts


def test_a_signal_before_tune_runs_is_remembered_not_fatal() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with interrupts.stop_on_signals():
        assert not interrupts.requested()
        os.kill(os.getpid(), signal.SIGUSR1)  # the default action would end the process
        assert interrupts.requested()
    assert signal.getsignal(signal.SIGUSR1) is before  # restored


def test_sigterm_goes_to_tunes_handler_while_tune_runs_and_twice_kills() -> None:
    calls, before = [], signal.getsignal(signal.SIGTERM)
    with interrupts.stop_on_signals():
        signal.signal(signal.SIGUSR1, lambda s, f: calls.append(s))  # as tune.run installs
        os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGUSR1] and interrupts.requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_a_new_run_starts_without_an_old_request() -> None:
    with interrupts.stop_on_signals():
        os.kill(os.getpid(), signal.SIGUSR1)
    with interrupts.stop_on_signals():
        assert not interrupts.requested()


def test_a_signal_of_an_earlier_run_stops_no_later_run_without_handlers() -> None:
    """A run started without stop_on_signals (tests, the run_trial template) must not be
    stopped at Tune's setup by a signal an earlier run took (seen in CI: an Optuna run after
    this file's tests ended at once with 0 trials)."""
    with interrupts.stop_on_signals():
        os.kill(os.getpid(), signal.SIGUSR1)
        assert interrupts.pending() and interrupts.requested()
    assert interrupts.requested()  # what run_hpo reads after the run
    assert not interrupts.pending()  # what the Tune callback reads at setup


def test_the_newest_saved_state_is_the_newest_run_not_the_newest_file(tmp_path) -> None:
    """A resumed run writes its own state file; Tune touches all of them at the end."""
    import json

    from itwinai_ray.tuning.saved_state import unfinished_trials

    def state(name: str, status: str) -> None:
        trial = {"trial_id": "t1", "status": status, "relative_logdir": "trial_t1"}
        (tmp_path / name).write_text(json.dumps({"trial_data": [[json.dumps(trial), "{}"]]}))

    state("experiment_state-2026-12-07_05-09-31.json", "TERMINATED")  # the resumed run
    state("experiment_state-2026-12-07_05-08-19.json", "RUNNING")  # written last here
    assert unfinished_trials(tmp_path) == set()
    state("experiment_state-2026-12-07_05-10-00.json", "PENDING")
    assert unfinished_trials(tmp_path) == {"t1"}


def test_rearm_takes_sigterm_back_from_a_later_handler() -> None:
    """Ray's core installs its own SIGTERM handler during ray.init (it aborts the driver)."""
    with interrupts.stop_on_signals():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init does, in C++
        interrupts.rearm()
        os.kill(os.getpid(), signal.SIGTERM)  # SIG_DFL would end the process
        assert interrupts.requested()
    interrupts.rearm()  # outside: nothing to take back
