"""HyperBand without Ray 2.60's hang at the end of a bracket.

HyperBand pauses a trial that reaches its bracket's milestone before the bracket's other
trials. When the last of them gets there at the bracket's end (``max_t``), the bracket stops
its PAUSED trials (``_Bracket.cleanup_full``). A trial whose pause is still under way (Tune is
saving its checkpoint: RUNNING and ``is_saving``) is passed over; it becomes PAUSED a moment
later, in a bracket that is finished, so nothing stops or resumes it again. The experiment
then waits forever with no trial running (Tune's "No trial is running and no new trial has
been started within the last 60 seconds" every minute). Measured here: 1 run in 15 of a
6-trial HyperBand run on a local Ray that earlier runs had used (their idle worker processes
start trials at once, so trials of a bracket reach its end together); the clean-clone CI
saw it too.

The fix is Ray's own rule applied later: before Tune asks which trial to run next (every
step), the PAUSED trials of a finished bracket are stopped, as ``cleanup_full`` would have.
"""

from __future__ import annotations

import logging
from typing import Any

# Only the driver imports this module (inside the function that builds the Tuner).
from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandForBOHB as RayHyperBandForBOHB
from ray.tune.schedulers import HyperBandScheduler

logger = logging.getLogger(__name__)


def stop_paused_trials_of_finished_brackets(scheduler: Any, tune_controller: Any) -> None:
    """Stop the PAUSED trials of ``scheduler``'s finished brackets."""
    for band in scheduler._hyperbands:  # Ray has no public view of the brackets
        for bracket in band:
            if bracket is None or not bracket.finished():
                continue
            for trial in bracket.current_trials():
                if trial.status == Trial.PAUSED and not trial.is_saving:
                    logger.info("Trial %s was paused as its HyperBand bracket finished: "
                                "stopped, as the bracket's other trials were.", trial)
                    tune_controller.stop_trial(trial)


class _StopsFinishedBrackets:
    """Mixed in before Ray's HyperBand class (see :func:`without_finished_bracket_hang`)."""

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        stop_paused_trials_of_finished_brackets(self, tune_controller)
        return super().choose_trial_to_run(tune_controller)  # type: ignore[misc]


class HyperBand(_StopsFinishedBrackets, HyperBandScheduler):
    """Ray's ``HyperBandScheduler`` with finished brackets' paused trials stopped."""


class HyperBandForBOHB(_StopsFinishedBrackets, RayHyperBandForBOHB):
    """Ray's ``HyperBandForBOHB`` with finished brackets' paused trials stopped."""


_FIXED: dict[type, type] = {HyperBandScheduler: HyperBand, RayHyperBandForBOHB: HyperBandForBOHB}


def without_finished_bracket_hang(scheduler: Any) -> Any:
    """``scheduler``, fixed when it is exactly Ray's ``HyperBandScheduler`` or
    ``HyperBandForBOHB``: its class becomes the subclass above, which only adds the rule (no
    state, so the swap is safe for objects a user built too). Anything else as it is."""
    fixed = _FIXED.get(type(scheduler))
    if fixed is not None:
        scheduler.__class__ = fixed
    return scheduler
