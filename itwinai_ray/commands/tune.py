"""``itwinai-ray tune``: tune an existing pipeline without changing it (one trial per sampled
config, :mod:`itwinai_ray.tuning.pipeline_hpo`); the search space and the tune/run settings
come from a YAML file, the flags override them."""

from __future__ import annotations

import argparse

from .outcome import (
    errored_trials_code,
    output_level,
    output_settings,
    print_best_config,
    print_results,
)

EXAMPLES = """\
examples:
  itwinai-ray tune --config pipeline.yaml --search-space space.yaml
  itwinai-ray tune -c pipeline.yaml --search-space space.yaml --num-samples 8 \\
      --scheduler asha --metric val_loss --mode min epochs=5
space.yaml:
  optim_lr: {type: loguniform, lower: 1.0e-4, upper: 1.0e-1}
  training_pipeline.init_args.steps.2.init_args.config.batch_size: {type: choice,
      categories: [32, 64]}
"""


def configure(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..tuning import pipeline_hpo

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
    if output_level(args):
        run_config.update(output_settings(output_level(args), run_config.get("verbose", 0),
                                          run_config.get("progress", True)))
    results = pipeline_hpo.tune_pipeline(
        args.config, pipe_key=args.pipe_key, search_space=hpo["search_space"],
        tune_config=tune_config, resources_per_trial=resources, run_config=run_config,
        ray_init=ray_init, overrides=[*args.overrides_opt, *args.overrides], steps=args.steps)
    print_results(results)
    best = Path(results.experiment_path or ".") / "best_config.yaml"
    if best.is_file():
        print_best_config(best, args.pipe_key)
    return errored_trials_code(results, args)
