"""The ``itwinai-ray results`` and ``itwinai-ray mlflow-ui`` subcommands (arguments + run)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from . import formats
from .loading import (
    META_FILE,
    PIPELINE_FILE,
    Experiment,
    load_experiment,
    pipeline_source_key,
)

RESULTS_EXAMPLES = """\
examples:
  itwinai-ray results runs/digits-hpo/digits-hpo
  itwinai-ray results runs/digits-hpo/digits-hpo --plot            # PNGs into <dir>/plots
  itwinai-ray results runs/digits-hpo/digits-hpo --format json > results.json
  itwinai-ray results DIR --config hpo.yaml --best-config best.yaml   # ready-to-run pipeline
  itwinai-ray results DIR --journal      # (re)write DIR/optuna-journal.log from result.json
"""


def configure_results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", metavar="EXPERIMENT_DIR",
                        help="the experiment directory: storage_path/name of an HPO run "
                             "(finished, interrupted or still running)")
    parser.add_argument("-f", "--format", choices=formats.FORMATS, default="table",
                        help="output format (default: %(default)s)")
    parser.add_argument("--plot", nargs="?", const="", default=None, metavar="DIR",
                        help="write PNG plots (learning curves, parallel coordinates, "
                             "hyperparameter importance, Pareto front) into DIR "
                             "(default: EXPERIMENT_DIR/plots)")
    parser.add_argument("--metric", default=None,
                        help="rank by this metric (default: the one the run optimised)")
    parser.add_argument("--mode", choices=("min", "max"), default=None,
                        help="with --metric: whether lower or higher is better")
    parser.add_argument("-c", "--config", default=None, metavar="FILE",
                        help="the pipeline YAML of the run: write it with the best values "
                             "filled in (default: the copy saved in EXPERIMENT_DIR, if any)")
    parser.add_argument("-p", "--pipe-key", default=None, metavar="KEY",
                        help="key of the pipeline in --config (default: training_pipeline)")
    parser.add_argument("--best-config", default=None, metavar="FILE",
                        help="where to write the ready-to-run best config "
                             "(default: EXPERIMENT_DIR/best_config.yaml)")
    parser.add_argument("--journal", action="store_true",
                        help="(re)write the experiment's Optuna trial journal "
                             "(EXPERIMENT_DIR/optuna-journal.log, what optuna-dashboard "
                             "reads) from its trials' result.json: for runs from before "
                             "journals, or a lost or damaged journal; not while it runs")


def run_results(args: argparse.Namespace) -> int:
    if args.mode and not args.metric:
        raise ConfigurationError("--mode needs --metric (the metric it applies to).")
    exp = load_experiment(args.experiment, metric=args.metric, mode=args.mode)
    out = sys.stdout
    if args.format == "json":
        out.write(formats.to_json(exp) + "\n")
    elif args.format == "csv":
        out.write(formats.to_csv(exp))
    elif args.format == "markdown":
        out.write(formats.to_markdown(exp))
    report = sys.stdout if args.format == "table" else sys.stderr
    if args.format == "table":
        _print_table(exp)
        report.write(f"{exp.results.summary()}\n")
        if (exp.path / "logs").is_dir():
            report.write(f"Logs: {exp.path / 'logs'} (Ray), and worker-<rank>.log in each "
                         f"trial's directory\n")
    _report_best(exp, args, report)
    if args.plot is not None:
        from . import plots

        directory = Path(args.plot) if args.plot else exp.path / "plots"
        paths = plots.save(plots.figures(exp), directory)
        for path in paths.values():
            report.write(f"Plot: {path}\n")
        if not paths:
            report.write("No plots: no trial reported the metric.\n")
    if args.journal:
        from ..tuning.journal_rebuild import rebuild_journal

        report.write(f"Trial journal: {rebuild_journal(exp)} (study {exp.path.name!r})\n")
    return 0


def _print_table(exp: Experiment) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        console = Console(width=200)
    formats.print_rich(exp, console)


def _report_best(exp: Experiment, args: argparse.Namespace, out: Any) -> None:
    values = formats.best_values(exp)
    if values is None:
        out.write(f"No trial reported a finite {exp.metric!r}: no best configuration.\n")
        return
    out.write(f"Best values ({exp.metric}, {exp.mode}):\n")
    out.write("  " + formats.best_yaml(values).rstrip().replace("\n", "\n  ") + "\n")
    written = _write_best_config(exp, args)
    if written is not None:
        pipe = f" --pipe-key {written[1]}" if written[1] != "training_pipeline" else ""
        out.write(f"Best config: {written[0]}\n  re-run it with: itwinai-ray exec-pipeline "
                  f"--config {written[0]}{pipe}\n")


def _write_best_config(exp: Experiment, args: argparse.Namespace) -> tuple[Path, str] | None:
    """The pipeline YAML with the best values filled in, when the pipeline config is known."""
    source = Path(args.config) if args.config else exp.path / PIPELINE_FILE
    pipe_key = args.pipe_key or pipeline_source_key(source) or "training_pipeline"
    if not source.is_file():
        if args.config:
            raise ConfigurationError(f"--config {args.config}: no such file.")
        existing = exp.path / "best_config.yaml"
        return (existing, pipe_key) if existing.is_file() else None
    from ..config.loader import load_config, load_pipeline
    from ..integrations.steps import find_hpo_step
    from ..tuning.best_config import write_best_config

    config = load_config(source)
    pipeline = load_pipeline(source, pipe_key=pipe_key)
    _, trainer = find_hpo_step(pipeline.steps) or (None, None)
    if trainer is None:
        raise ConfigurationError(f"The pipeline '{pipe_key}' in {source} has no "
                                 f"RayTorchTrainer step: cannot fill in the best values.")
    target = Path(args.best_config) if args.best_config else exp.path / "best_config.yaml"
    written = write_best_config(exp.results, config, pipe_key, trainer, target)
    return (written, pipe_key) if written is not None else None


# --------------------------------------------------------------------------- mlflow-ui
def configure_mlflow_ui(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", metavar="EXPERIMENT_DIR",
                        help="the experiment directory (storage_path/name) of an HPO run")
    parser.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    parser.add_argument("--print-command", action="store_true",
                        help="print the mlflow command instead of running it")


def tracking_uri(experiment: str | Path) -> str:
    """The MLflow store of an experiment: from ``itwinai_ray.json``, else the default."""
    path = Path(experiment).expanduser().resolve()
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        meta = {}
    uri = (meta.get("mlflow") or {}).get("tracking_uri")
    if uri:
        return str(uri)
    db = path / "mlflow.db"
    if not db.is_file():
        raise ConfigurationError(
            f"No MLflow store for '{path}': no {META_FILE} naming one and no mlflow.db. "
            f"Give the directory storage_path/name of an HPO run that logged to MLflow.")
    return f"sqlite:///{db}"


def mlflow_ui_command(experiment: str | Path, port: int) -> list[str]:
    uri = tracking_uri(experiment)
    if uri.startswith(("http://", "https://")):
        raise ConfigurationError(f"This experiment logged to the MLflow server {uri}: open "
                                 f"that address instead of starting a UI.")
    mlflow = shutil.which("mlflow", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                          os.environ.get("PATH", "")]))
    if mlflow is None:
        raise ConfigurationError("The 'mlflow' command is not installed: pip install mlflow")
    return [mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]


def run_mlflow_ui(args: argparse.Namespace) -> int:
    command = mlflow_ui_command(args.experiment, args.port)
    if args.print_command:
        print(" ".join(command))
        return 0
    print(f"MLflow UI for {args.experiment}: http://127.0.0.1:{args.port} (Ctrl-C to stop)",
          flush=True)
    os.execv(command[0], command)  # the UI replaces this process: Ctrl-C stops it
    return 0  # pragma: no cover
