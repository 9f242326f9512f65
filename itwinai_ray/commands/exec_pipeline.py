"""``itwinai-ray exec-pipeline``: build a pipeline from a YAML file and execute it; after an
HPO pipeline, print the ranked trials and write the ready-to-run best config."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from .outcome import (
    EXIT_OK,
    errored_trials_code,
    output_level,
    output_settings,
    print_best_config,
    print_results,
)

logger = logging.getLogger("itwinai_ray")

EXAMPLES = """\
examples:
  itwinai-ray exec-pipeline --config config.yaml
  itwinai-ray exec-pipeline -c config.yaml --pipe-key training_pipeline --steps 0:2 \\
      -o training_pipeline.init_args.steps.2.init_args.epochs=3 batch_size=64
  itwinai-ray exec-pipeline -c config.yaml +new_key=1 ~unused_key --print-config
"""


def configure(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    from ..config.loader import load_config, load_pipeline

    overrides = [*args.overrides_opt, *args.overrides]
    add_to = getattr(args, "num_samples", None)
    if add_to is not None and (not getattr(args, "resume", False) or add_to < 1):
        from ..errors import ConfigurationError

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
        set_resume(pipeline, add_to)
    set_output(pipeline, output_level(args))
    remember_source(pipeline, args, overrides)
    logger.info("Executing pipeline '%s' from %s", args.pipe_key, args.config)
    output = pipeline.execute()
    results = output[-1] if isinstance(output, tuple) and output else output
    if getattr(results, "interrupted", False):
        logger.warning("Pipeline '%s' was interrupted", args.pipe_key)
    else:
        logger.info("Pipeline '%s' finished", args.pipe_key)
    return report_hpo(output, pipeline, args, overrides)


def remember_source(pipeline: Any, args: argparse.Namespace, overrides: list[str]) -> None:
    """HPO steps save this pipeline's YAML into their experiment directory: `itwinai-ray
    results` then writes the ready-to-run best config of an interrupted run too."""
    from ..config.loader import load_config
    from ..integrations.steps import hpo_steps

    for _, step in hpo_steps(getattr(pipeline, "steps", [])):
        step.hpo.pipeline_source = (load_config(args.config, overrides), args.pipe_key)


def set_resume(pipeline: Any, add_trials_to: int | None = None) -> None:
    """--resume: every HPO step (RayTorchTrainer) continues its experiment (and with
    --num-samples goes on until it holds that many trials)."""
    import dataclasses

    from ..integrations.steps import hpo_steps

    drivers = [step.hpo for _, step in hpo_steps(getattr(pipeline, "steps", []))]
    if not drivers:
        from ..errors import ConfigurationError

        raise ConfigurationError("--resume: the pipeline has no HPO step (RayTorchTrainer) "
                                 "whose experiment could be resumed.")
    for hpo in drivers:
        hpo.run = dataclasses.replace(hpo.run, resume=hpo.run.resume or True,
                                      add_trials_to=add_trials_to)


def set_output(pipeline: Any, level: int) -> None:
    """-v / -q: every HPO step (RayTorchTrainer) shows Ray's output / no progress."""
    import dataclasses

    from ..integrations.steps import hpo_steps

    for _, step in hpo_steps(getattr(pipeline, "steps", []) if level else []):
        run = step.hpo.run
        step.hpo.run = dataclasses.replace(
            run, **output_settings(level, run.verbose, run.progress))


def report_hpo(output: Any, pipeline: Any, args: argparse.Namespace,
               overrides: list[str]) -> int:
    """After an HPO pipeline: print the ranked table, write results and the best config.
    Returns the exit code (3 when some trials errored)."""
    from ..tuning.results import HPOResults

    results = output[-1] if isinstance(output, tuple) and output else output
    if not isinstance(results, HPOResults):
        return EXIT_OK
    from ..config.loader import load_config
    from ..integrations.steps import find_hpo_step
    from ..tuning.best_config import write_best_config

    print_results(results)
    _, trainer = find_hpo_step(pipeline.steps)
    if any(r.metric is not None for r in results.rows):
        written = write_best_config(results, load_config(args.config, overrides),
                                    args.pipe_key, trainer)
        if written is not None:
            print_best_config(written, args.pipe_key)
    return errored_trials_code(results, args)
