"""``itwinai-ray``: the command line.

Each subcommand is one row of :data:`COMMANDS` (name, help, how to add its arguments, what it
runs). Errors raised on purpose (:class:`~itwinai_ray.errors.ItwinaiRayError`) print as one
``error: ...`` line and exit 2; anything else is a bug or a user-code error and keeps its
traceback (exit 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ItwinaiRayError

logger = logging.getLogger("itwinai_ray")

#: Exit codes (README, "Errors"): 3 = an HPO run in which some trials errored; 4 = all did
#: (``TrialsFailedError.exit_code``).
EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_SOME_TRIALS_FAILED = 0, 1, 2, 3
#: An interrupted HPO run (SIGUSR1/SIGTERM, a SLURM time limit): sysexits' EX_TEMPFAIL, "try
#: again" (with --resume). scripts/slurm_ray.sh requeues the job on it when asked to.
EXIT_INTERRUPTED = 75


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure`` adds its arguments, ``run`` executes it."""

    name: str
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- exec-pipeline
def _configure_exec_pipeline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="FILE",
                        help="YAML file with one or more pipelines")
    parser.add_argument("-p", "--pipe-key", default="training_pipeline", metavar="KEY",
                        help="key of the pipeline in the file, dotted allowed "
                             "(default: %(default)s)")
    parser.add_argument("-s", "--steps", default=None, metavar="SPEC",
                        help="run only some steps: a slice like 0:2 or :-1, an index, or a "
                             "step name (when steps are a mapping)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides_opt",
                        help="override a value (repeatable): a.b.0.c=3, +new.key=1, ~del.key")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="Hydra-style overrides, same syntax as -o")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved configuration as YAML and exit")
    parser.add_argument("--resume", action="store_true",
                        help="continue the HPO experiment after a crash or time limit (same "
                             "as run_config.resume: true): run_config.name, or else the "
                             "newest experiment of this trainer under storage_path")
    parser.add_argument("--num-samples", type=int, default=None, metavar="N",
                        help="with --resume: add trials until the experiment holds N in "
                             "total (a finished one too); its searcher goes on from what it "
                             "learned (optuna and other searchers that keep their state)")


def _run_exec_pipeline(args: argparse.Namespace) -> int:
    from .config.loader import load_config, load_pipeline

    overrides = [*args.overrides_opt, *args.overrides]
    add_to = getattr(args, "num_samples", None)
    if add_to is not None and (not getattr(args, "resume", False) or add_to < 1):
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"--num-samples {add_to}: adds trials to an experiment, so it needs --resume and "
            f"N >= 1 (the trials it will hold in total). For a new experiment set "
            f"tune_config.num_samples.")
    if args.print_config:
        import yaml

        config = load_config(args.config, overrides)
        sys.stdout.write(yaml.safe_dump(config, sort_keys=False, default_flow_style=False))
        return EXIT_OK
    pipeline = load_pipeline(args.config, pipe_key=args.pipe_key, overrides=overrides,
                             steps=args.steps)
    if getattr(args, "resume", False):
        _set_resume(pipeline, add_to)
    _set_output(pipeline, _output_level(args))
    _remember_source(pipeline, args, overrides)
    logger.info("Executing pipeline '%s' from %s", args.pipe_key, args.config)
    output = pipeline.execute()
    results = output[-1] if isinstance(output, tuple) and output else output
    if getattr(results, "interrupted", False):
        logger.warning("Pipeline '%s' was interrupted", args.pipe_key)
    else:
        logger.info("Pipeline '%s' finished", args.pipe_key)
    return _report_hpo(output, pipeline, args, overrides)


def _remember_source(pipeline: Any, args: argparse.Namespace, overrides: list[str]) -> None:
    """HPO steps save this pipeline's YAML into their experiment directory: `itwinai-ray
    results` then writes the ready-to-run best config of an interrupted run too."""
    from .config.loader import load_config
    from .integrations.steps import hpo_steps

    for _, step in hpo_steps(getattr(pipeline, "steps", [])):
        step.hpo.pipeline_source = (load_config(args.config, overrides), args.pipe_key)


def _set_resume(pipeline: Any, add_trials_to: int | None = None) -> None:
    """--resume: every HPO step (RayTorchTrainer) continues its experiment (and with
    --num-samples goes on until it holds that many trials)."""
    import dataclasses

    from .integrations.steps import hpo_steps

    drivers = [step.hpo for _, step in hpo_steps(getattr(pipeline, "steps", []))]
    if not drivers:
        from .errors import ConfigurationError

        raise ConfigurationError("--resume: the pipeline has no HPO step (RayTorchTrainer) "
                                 "whose experiment could be resumed.")
    for hpo in drivers:
        hpo.run = dataclasses.replace(hpo.run, resume=hpo.run.resume or True,
                                      add_trials_to=add_trials_to)


def _output_level(args: argparse.Namespace) -> int:
    """-1 (``-q``: only the results), 0 (default: Ray's output in log files), 1 (``-v``)."""
    return 1 if getattr(args, "verbose", False) else -1 if getattr(args, "quiet", False) else 0


def _output_settings(level: int, verbose: int, progress: bool) -> dict[str, Any]:
    """``run_config`` verbose/progress for the CLI's ``-v``/``-q`` (which win over the YAML)."""
    if level > 0:
        return {"verbose": max(verbose, 1), "progress": progress}
    return {"verbose": verbose, "progress": progress and level == 0}


def _set_output(pipeline: Any, level: int) -> None:
    """-v / -q: every HPO step (RayTorchTrainer) shows Ray's output / no progress."""
    import dataclasses

    from .integrations.steps import hpo_steps

    for _, step in hpo_steps(getattr(pipeline, "steps", []) if level else []):
        run = step.hpo.run
        step.hpo.run = dataclasses.replace(
            run, **_output_settings(level, run.verbose, run.progress))


def _report_hpo(output: Any, pipeline: Any, args: argparse.Namespace,
                overrides: list[str]) -> int:
    """After an HPO pipeline: print the ranked table, write results and the best config.
    Returns the exit code (3 when some trials errored)."""
    from .tuning.results import HPOResults

    results = output[-1] if isinstance(output, tuple) and output else output
    if not isinstance(results, HPOResults):
        return EXIT_OK
    from .config.loader import load_config
    from .integrations.steps import find_hpo_step
    from .tuning.best_config import write_best_config

    _print_results(results)
    _, trainer = find_hpo_step(pipeline.steps)
    if any(r.metric is not None for r in results.rows):
        written = write_best_config(results, load_config(args.config, overrides),
                                    args.pipe_key, trainer)
        if written is not None:
            print(f"Best config: {written}\n  re-run it with: itwinai-ray exec-pipeline "
                  f"--config {written} --pipe-key {args.pipe_key}")
    return _errored_trials_code(results, args)


def _resume_hint(args: argparse.Namespace | None) -> str:
    """How to continue an interrupted run: this command with --resume."""
    import shlex

    if args is None or getattr(args, "command", None) != "exec-pipeline":
        return "the same command with run_config: {resume: true}"
    argv = ["itwinai-ray", *sys.argv[1:]]
    return shlex.join(argv if "--resume" in argv else [*argv, "--resume"])


def _errored_trials_code(results: Any, args: argparse.Namespace | None = None) -> int:
    """75 for an interrupted run (with the command that continues it); else list the trials
    that errored (stopped ones are not errors): 3 if any, else 0."""
    if getattr(results, "interrupted", False):
        print(f"interrupted: {results.done()} of {len(results.rows)} trials done; the state "
              f"is saved (exit code {EXIT_INTERRUPTED}). Resume with: {_resume_hint(args)}")
        return EXIT_INTERRUPTED
    errored = [r for r in results.rows if r.status == "error"]
    if not errored:
        return EXIT_OK
    print(f"{len(errored)} of {len(results.rows)} trials errored (exit code "
          f"{EXIT_SOME_TRIALS_FAILED}):")
    for row in errored:
        print(f"  {row.trial_id}: {row.error} (logs: {row.logs()})")
    return EXIT_SOME_TRIALS_FAILED


# --------------------------------------------------------------------------- tune
def _configure_tune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, metavar="FILE",
                        help="YAML file of the pipeline to tune (unchanged)")
    parser.add_argument("-p", "--pipe-key", default="training_pipeline", metavar="KEY",
                        help="key of the pipeline in the file (default: %(default)s)")
    parser.add_argument("--search-space", required=True, metavar="FILE",
                        help="YAML search space {dotted.path: {type: ..., ...}}, or a file "
                             "with sections search_space, tune_config, run_config, "
                             "resources_per_trial, ray_init")
    parser.add_argument("-s", "--steps", default=None, metavar="SPEC",
                        help="run only some steps of the pipeline (as exec-pipeline)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides_opt", help="override a value of the pipeline file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="Hydra-style overrides of the pipeline file, same as -o")
    group = parser.add_argument_group("tune_config / run_config (override the file's)")
    for flag, kind, text in (
            ("num-samples", int, "number of trials"),
            ("metric", str, "metric to optimise (e.g. val_loss)"),
            ("mode", str, "min or max"),
            ("search-alg", str, "random, grid, optuna, ..."),
            ("scheduler", str, "fifo, asha, median, ..."),
            ("time-budget-s", float, "stop the experiment after this many seconds"),
            ("name", str, "experiment name (directory under --storage-path)"),
            ("storage-path", str, "where results go (shared by all nodes on a cluster)")):
        group.add_argument(f"--{flag}", type=kind, default=None, help=text)
    group.add_argument("--cpus-per-trial", type=float, default=None)
    group.add_argument("--gpus-per-trial", type=float, default=None)
    group.add_argument("--num-cpus", type=int, default=None,
                       help="logical CPUs of the local Ray (ignored with RAY_ADDRESS)")


def _run_tune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .tuning import pipeline_hpo

    hpo = pipeline_hpo.read_hpo_file(args.search_space)
    tune_config = dict(hpo.get("tune_config") or {})
    run_config = dict(hpo.get("run_config") or {})
    resources = dict(hpo.get("resources_per_trial") or {})
    ray_init = dict(hpo.get("ray_init") or {})
    for key in ("num_samples", "metric", "mode", "search_alg", "scheduler", "time_budget_s"):
        if getattr(args, key) is not None:
            tune_config[key] = getattr(args, key)
    for key in ("name", "storage_path"):
        if getattr(args, key) is not None:
            run_config[key] = getattr(args, key)
    if args.cpus_per_trial is not None:
        resources["cpu"] = args.cpus_per_trial
    if args.gpus_per_trial is not None:
        resources["gpu"] = args.gpus_per_trial
    if args.num_cpus is not None:
        ray_init["num_cpus"] = args.num_cpus
    if _output_level(args):
        run_config.update(_output_settings(_output_level(args), run_config.get("verbose", 0),
                                           run_config.get("progress", True)))
    results = pipeline_hpo.tune_pipeline(
        args.config, pipe_key=args.pipe_key, search_space=hpo["search_space"],
        tune_config=tune_config, resources_per_trial=resources, run_config=run_config,
        ray_init=ray_init, overrides=[*args.overrides_opt, *args.overrides], steps=args.steps)
    _print_results(results)
    best = Path(results.experiment_path or ".") / "best_config.yaml"
    if best.is_file():
        print(f"Best config: {best}\n  re-run it with: itwinai-ray exec-pipeline "
              f"--config {best} --pipe-key {args.pipe_key}")
    return _errored_trials_code(results, args)


def _print_results(results: Any) -> None:
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


_TUNE_EXAMPLES = """\
examples:
  itwinai-ray tune --config pipeline.yaml --search-space space.yaml
  itwinai-ray tune -c pipeline.yaml --search-space space.yaml --num-samples 8 \\
      --scheduler asha --metric val_loss --mode min epochs=5
space.yaml:
  optim_lr: {type: loguniform, lower: 1.0e-4, upper: 1.0e-1}
  training_pipeline.init_args.steps.2.init_args.config.batch_size: {type: choice,
      categories: [32, 64]}
"""

_EXEC_PIPELINE_EXAMPLES = """\
examples:
  itwinai-ray exec-pipeline --config config.yaml
  itwinai-ray exec-pipeline -c config.yaml --pipe-key training_pipeline --steps 0:2 \\
      -o training_pipeline.init_args.steps.2.init_args.epochs=3 batch_size=64
  itwinai-ray exec-pipeline -c config.yaml +new_key=1 ~unused_key --print-config
"""

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
                    + _EXEC_PIPELINE_EXAMPLES,
        configure=_configure_exec_pipeline,
        run=_run_exec_pipeline,
    ),
    Command(
        name="tune",
        help="tune an existing pipeline: one trial per sampled config (run_trial path)",
        description="Tune a pipeline without changing it: each trial builds the pipeline "
                    "with the trial's values as dotted overrides and executes it (trials are "
                    "not distributed; use RayTorchTrainer for that). Writes results.json and "
                    "a ready-to-run best_config.yaml.\n\n" + _TUNE_EXAMPLES,
        configure=_configure_tune,
        run=_run_tune,
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
    _setup_logging(_output_level(args))
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
