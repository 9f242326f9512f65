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

EXIT_OK, EXIT_BUG, EXIT_USAGE = 0, 1, 2


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


def _run_exec_pipeline(args: argparse.Namespace) -> int:
    from .config.loader import load_config, load_pipeline

    overrides = [*args.overrides_opt, *args.overrides]
    if args.print_config:
        import yaml

        config = load_config(args.config, overrides)
        sys.stdout.write(yaml.safe_dump(config, sort_keys=False, default_flow_style=False))
        return EXIT_OK
    pipeline = load_pipeline(args.config, pipe_key=args.pipe_key, overrides=overrides,
                             steps=args.steps)
    logger.info("Executing pipeline '%s' from %s", args.pipe_key, args.config)
    output = pipeline.execute()
    logger.info("Pipeline '%s' finished", args.pipe_key)
    _report_hpo(output, pipeline, args, overrides)
    return EXIT_OK


def _report_hpo(output: Any, pipeline: Any, args: argparse.Namespace,
                overrides: list[str]) -> None:
    """After an HPO pipeline: print the ranked table, write results and the best config."""
    from .tuning.results import HPOResults

    results = output[-1] if isinstance(output, tuple) and output else output
    if not isinstance(results, HPOResults):
        return
    from pathlib import Path

    from rich.console import Console

    from .config.loader import load_config
    from .trainer.ray_trainer import RayTorchTrainer
    from .tuning.best_config import write_best_config

    console = Console()
    if not console.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        console = Console(width=160)
    results.print_table(console)
    trainer = next(s for s in pipeline.steps if isinstance(s, RayTorchTrainer))
    experiment = Path(results.experiment_path or ".")
    print(f"{results.summary()}\nResults: {experiment / 'results.json'}")
    if not any(r.metric is not None for r in results.rows):
        return
    written = write_best_config(results, load_config(args.config, overrides), args.pipe_key,
                                trainer)
    if written is not None:
        print(f"Best config: {written}\n  re-run it with: itwinai-ray exec-pipeline "
              f"--config {written} --pipe-key {args.pipe_key}")


_EXEC_PIPELINE_EXAMPLES = """\
examples:
  itwinai-ray exec-pipeline --config config.yaml
  itwinai-ray exec-pipeline -c config.yaml --pipe-key training_pipeline --steps 0:2 \\
      -o training_pipeline.init_args.steps.2.init_args.epochs=3 batch_size=64
  itwinai-ray exec-pipeline -c config.yaml +new_key=1 ~unused_key --print-config
"""

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
)


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per row of :data:`COMMANDS`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log at DEBUG level and show tracebacks of wrapped errors")
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


def _setup_logging(verbose: bool) -> None:
    package_logger = logging.getLogger("itwinai_ray")
    package_logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not package_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package_logger.addHandler(handler)
        package_logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 bug or user-code error, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _setup_logging(verbose)
    try:
        return int(args._run(args))
    except ItwinaiRayError as exc:
        if verbose:
            logger.debug("Traceback of the error below:", exc_info=exc)
        message = " ".join(str(exc).split("\n")) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
