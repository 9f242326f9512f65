"""Stopping an experiment in order on SIGUSR1 or SIGTERM (a SLURM time limit, ``kill``).

While the Tuner runs, Ray Tune handles SIGUSR1 itself: it stops the running trials, saves the
experiment state and returns; ``--resume`` continues from there. Around it, the driver:

- handles SIGTERM the same way (Tune does not), a second SIGTERM acting as before;
- remembers a signal that comes before Tune runs (Ray starting up), so that the experiment
  stops as soon as Tune has started (:func:`requested`, checked by a Tune callback), instead
  of the process dying of SIGUSR1's default action.

Signal handlers can only be set in the main thread; elsewhere nothing changes. No Ray here.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

_requested = threading.Event()
_active: list[Callable[..., Any]] = []  # the handler of the running stop_on_signals


def requested() -> bool:
    """Was the experiment asked to stop (a signal) since :func:`stop_on_signals` began?"""
    return _requested.is_set()


def pending() -> bool:
    """Did a signal ask the running :func:`stop_on_signals` to stop? False outside one: a
    signal taken by an earlier run never stops a later one (e.g. a run started without the
    handlers, as tests and the run_trial template do)."""
    return bool(_active) and _requested.is_set()


def tune_handler(ours: Callable[..., Any] | None = None) -> Callable[..., Any] | None:
    """Ray Tune's SIGUSR1 handler while a Tuner runs (the current one, unless it is ours)."""
    current = signal.getsignal(signal.SIGUSR1)
    return current if callable(current) and current is not ours else None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: SIGUSR1 and SIGTERM ask the experiment to stop in order."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGTERM)}

    def on_signal(signum: int, frame: Any) -> None:
        if _requested.is_set() and signum == signal.SIGTERM:  # the second one: as before
            signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
            raise KeyboardInterrupt
        _requested.set()
        logger.warning("%s: stopping the experiment in order (running trials stop, the state "
                       "is saved; send SIGTERM again to stop at once).",
                       signal.Signals(signum).name)
        handler = tune_handler(on_signal)
        if handler is not None:
            handler(signal.SIGUSR1, frame)

    for sig in previous:
        signal.signal(sig, on_signal)
    _active.append(on_signal)
    try:
        yield
    finally:
        _active.remove(on_signal)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def rearm() -> None:
    """Take SIGTERM back after ``ray.init``: Ray's core installs its own SIGTERM handler in
    the driver (it logs the signal and aborts the process)."""
    if _active and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _active[-1])
