"""The Tune side of :mod:`itwinai_ray.tuning.interrupts`: a signal that came before the Tuner
started."""

from __future__ import annotations

import signal
from typing import Any

from itwinai_ray.tuning import interrupts


def stop_if_requested_callback() -> Any:
    """A Tune callback: at setup (Tune's SIGUSR1 handler is in place by then), stop the
    experiment at once if a SIGUSR1/SIGTERM came while Ray was starting."""
    import ray.tune

    class StopIfRequested(ray.tune.Callback):
        def setup(self, **info: Any) -> None:
            handler = interrupts.tune_handler()
            if interrupts.pending() and handler is not None:
                handler(signal.SIGUSR1, None)

    return StopIfRequested()
