"""``itwinai-ray``: the command line.

Each subcommand is one row of :data:`COMMANDS` (name, help, how to add its arguments, what it
runs). Errors raised on purpose (:class:`~itwinai_ray.errors.ItwinaiRayError`) print as one
``error: ...`` line and exit 2; anything else is a bug or a user-code error and keeps its
traceback (exit 1). ``exec-pipeline`` and ``tune`` are implemented in
:mod:`itwinai_ray.commands` (exit codes and printed results: :mod:`~itwinai_ray.commands.outcome`),
the others in :mod:`itwinai_ray.report` and :mod:`itwinai_ray.slurm`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .commands import exec_pipeline, tune
from .commands.outcome import output_level
from .errors import ItwinaiRayError

logger = logging.getLogger("itwinai_ray")


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure`` adds its arguments, ``run`` executes it."""

    name: str
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _report_command(name: str) -> Callable[..., Any]:
    """``results`` / ``mlflow-ui`` live in :mod:`itwinai_ray.report.command` (imported late)."""
    from .report import command

    return getattr(command, name)


def _report_module(name: str) -> Any:
    """A module of :mod:`itwinai_ray.report` other than ``command`` (imported late)."""
    import importlib

    return importlib.import_module(f".report.{name}", __package__)


def _slurm_module() -> Any:
    from . import slurm

    return slurm


def _report_examples() -> str:
    return ("examples:\n  itwinai-ray results runs/digits-hpo/digits-hpo --plot\n"
            "  itwinai-ray results runs/digits-hpo/digits-hpo --format json\n"
            "  itwinai-ray mlflow-ui runs/digits-hpo/digits-hpo --port 5000\n")


#: The subcommand table. Add a row (e.g. tune, results, slurm) to add a subcommand.
COMMANDS: tuple[Command, ...] = (
    Command(
        name="exec-pipeline",
        help="build a pipeline from a YAML file and execute it",
        description="Load a YAML file (class_path/init_args or _target_ style), apply "
                    "overrides, build the pipeline at --pipe-key and call its execute().\n\n"
                    + exec_pipeline.EXAMPLES,
        configure=exec_pipeline.configure,
        run=exec_pipeline.run,
    ),
    Command(
        name="tune",
        help="tune an existing pipeline: one trial per sampled config (run_trial path)",
        description="Tune a pipeline without changing it: each trial builds the pipeline "
                    "with the trial's values as dotted overrides and executes it (trials are "
                    "not distributed; use RayTorchTrainer for that). Writes results.json and "
                    "a ready-to-run best_config.yaml.\n\n" + tune.EXAMPLES,
        configure=tune.configure,
        run=tune.run,
    ),
    Command(
        name="results",
        help="ranked trials, best config and plots of an HPO experiment directory",
        description="Read an HPO experiment (finished, interrupted or running) from its "
                    "directory storage_path/name: a ranked table (config values, metric, "
                    "epochs, status), the best values as YAML (and the pipeline with them "
                    "filled in), --plot PNGs, --format json|csv|markdown for scripts.\n\n"
                    + _report_examples(),
        configure=lambda parser: _report_command("configure_results")(parser),
        run=lambda args: _report_command("run_results")(args),
    ),
    Command(
        name="mlflow-ui",
        help="start the MLflow UI on 127.0.0.1 for an experiment's MLflow store",
        description="Start `mlflow ui` on 127.0.0.1 for the MLflow store of an HPO experiment "
                    "(default: the sqlite store EXPERIMENT_DIR/mlflow.db): one parent run "
                    "per experiment, one child run per trial.",
        configure=lambda parser: _report_command("configure_mlflow_ui")(parser),
        run=lambda args: _report_command("run_mlflow_ui")(args),
    ),
    Command(
        name="dashboard",
        help="start optuna-dashboard on 127.0.0.1 for an experiment's trial journal (live)",
        description="Serve optuna-dashboard (history, importance, parallel coordinates, "
                    "Pareto front) for the Optuna journal EXPERIMENT_DIR/optuna-journal.log, "
                    "which the run appends to as trials report: it works while the "
                    "experiment runs and after. Listens on 127.0.0.1 (a free port unless "
                    "--port); reach it through the printed SSH tunnel command.\n\n"
                    "examples:\n"
                    "  itwinai-ray dashboard runs/digits-hpo/digits-hpo          # a free port\n"
                    "  itwinai-ray dashboard runs/digits-hpo/digits-hpo --port 8080\n"
                    "  # on your laptop: ssh -N -L 8080:127.0.0.1:8080 USER@LOGIN-NODE\n"
                    "  #                 then open http://127.0.0.1:8080/\n",
        configure=lambda parser: _report_module("dashboard").configure_dashboard(parser),
        run=lambda args: _report_module("dashboard").run_dashboard(args),
    ),
    Command(
        name="slurm",
        help="print (or --submit) the SLURM launcher for N nodes and G GPUs per node",
        description="Fill in scripts/slurm_ray.sh (#SBATCH lines and the job command) and "
                    "print it, write it (--output) or submit it (--submit). The script starts "
                    "a Ray cluster on the job's nodes, runs the command, stops Ray.\n\n"
                    + _slurm_module().CLI_EXAMPLES,
        configure=lambda parser: _slurm_module().configure_cli(parser),
        run=lambda args: _slurm_module().run_cli(args),
    ),
)


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per row of :data:`COMMANDS`."""
    common = argparse.ArgumentParser(add_help=False)
    loudness = common.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="log at DEBUG level, show tracebacks of wrapped errors and "
                               "Ray's own output (run_config.verbose: 1)")
    loudness.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                          help="show only warnings, errors and the results (no progress)")
    parser = argparse.ArgumentParser(
        prog="itwinai-ray",
        description="HPO of PyTorch pipelines on Ray, driven by itwinai-style YAML files.",
        epilog=textwrap.dedent("""\
            example:
              itwinai-ray exec-pipeline --config config.yaml -o batch_size=64

            Run 'itwinai-ray COMMAND --help' for the options of a command."""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, parents=[common],
                                    description=command.description,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        command.configure(sub)
        sub.set_defaults(_run=command.run)
    return parser


def _setup_logging(level: int) -> None:
    package_logger = logging.getLogger("itwinai_ray")
    package_logger.setLevel({1: logging.DEBUG, -1: logging.WARNING}.get(level, logging.INFO))
    ours = [h for h in package_logger.handlers if getattr(h, "_itwinai_ray_cli", False)]
    if ours:  # main() called again in one process: write to today's stderr
        ours[0].stream = sys.stderr  # (setStream would flush the old one, maybe closed)
    elif not package_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._itwinai_ray_cli = True  # type: ignore[attr-defined]
        package_logger.addHandler(handler)
        package_logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 bug or user-code error, 2 bad input, 3 some
    trials errored, 4 all trials errored)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _setup_logging(output_level(args))
    from . import itwinai_compat

    itwinai_compat.install()  # user code written for itwinai runs unchanged (if itwinai is absent)
    try:
        return int(args._run(args))
    except ItwinaiRayError as exc:
        if verbose:
            logger.debug("Traceback of the error below:", exc_info=exc)
        message = " ".join(str(exc).split("\n")) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
