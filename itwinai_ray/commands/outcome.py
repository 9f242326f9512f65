"""What the CLI does after a run: the exit codes, the output level of ``-v``/``-q``, the
printed results (ranked table, summary, best config) and the exit code of errored or
interrupted trials with the command that resumes them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: Exit codes (README, "Errors"): 3 = an HPO run in which some trials errored; 4 = all did
#: (``TrialsFailedError.exit_code``).
EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_SOME_TRIALS_FAILED = 0, 1, 2, 3
#: An interrupted HPO run (SIGUSR1/SIGTERM, a SLURM time limit): sysexits' EX_TEMPFAIL, "try
#: again" (with --resume). scripts/slurm_ray.sh requeues the job on it when asked to.
EXIT_INTERRUPTED = 75


def output_level(args: argparse.Namespace) -> int:
    """-1 (``-q``: only the results), 0 (default: Ray's output in log files), 1 (``-v``)."""
    return 1 if getattr(args, "verbose", False) else -1 if getattr(args, "quiet", False) else 0


def output_settings(level: int, verbose: int, progress: bool) -> dict[str, Any]:
    """``run_config`` verbose/progress for the CLI's ``-v``/``-q`` (which win over the YAML)."""
    if level > 0:
        return {"verbose": max(verbose, 1), "progress": progress}
    return {"verbose": verbose, "progress": progress and level == 0}


def print_results(results: Any) -> None:
    """The ranked trial table and the one-line summary."""
    from pathlib import Path

    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        console = Console(width=160)
    results.print_table(console)
    experiment = Path(results.experiment_path or ".")
    print(f"{results.summary()}\nResults: {experiment / 'results.json'}")
    if (experiment / "logs").is_dir():
        print(f"Logs: {experiment / 'logs'} (Ray), and worker-<rank>.log in each trial's "
              f"directory")


def print_best_config(path: Any, pipe_key: str) -> None:
    """Where the best config was written and the command that re-runs it."""
    print(f"Best config: {path}\n  re-run it with: itwinai-ray exec-pipeline "
          f"--config {path} --pipe-key {pipe_key}")


def resume_hint(args: argparse.Namespace | None) -> str:
    """How to continue an interrupted run: this command with --resume."""
    import shlex

    if args is None or getattr(args, "command", None) != "exec-pipeline":
        return "the same command with run_config: {resume: true}"
    argv = ["itwinai-ray", *sys.argv[1:]]
    return shlex.join(argv if "--resume" in argv else [*argv, "--resume"])


def errored_trials_code(results: Any, args: argparse.Namespace | None = None) -> int:
    """75 for an interrupted run (with the command that continues it); else list the trials
    that errored (stopped ones are not errors): 3 if any, else 0."""
    if getattr(results, "interrupted", False):
        print(f"interrupted: {results.done()} of {len(results.rows)} trials done; the state "
              f"is saved (exit code {EXIT_INTERRUPTED}). Resume with: {resume_hint(args)}")
        return EXIT_INTERRUPTED
    errored = [r for r in results.rows if r.status == "error"]
    if not errored:
        return EXIT_OK
    print(f"{len(errored)} of {len(results.rows)} trials errored (exit code "
          f"{EXIT_SOME_TRIALS_FAILED}):")
    for row in errored:
        print(f"  {row.trial_id}: {row.error} (logs: {row.logs()})")
    return EXIT_SOME_TRIALS_FAILED
