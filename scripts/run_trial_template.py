"""run_trial template: tune an existing pipeline with Ray Tune, one process per trial.

Copy this file, then adapt the parts marked ADAPT. Your pipeline YAML and trainer stay as
they are: each trial builds the pipeline with the trial's values and executes it. The
TorchTrainer inside notices that it runs in a Tune trial and reports its epoch metrics (and
a checkpoint, so retried trials resume) to Tune by itself.

    python scripts/run_trial_template.py \
        --config tutorials/01-quickstart-hpo/pipeline.yaml --num-samples 8

Prefer the one-liner when you need no changes to the trial function:
``itwinai-ray tune --config ... --search-space ...`` (or ``itwinai_ray.tune_pipeline``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import ray
from ray import tune

from itwinai_ray.backends.ray import tune_objects
from itwinai_ray.config.loader import build_pipeline, load_yaml
from itwinai_ray.config.overrides import apply_values
from itwinai_ray.tuning.results import HPOResults, write_yaml


def run_trial(config: dict[str, Any], data: dict[str, Any]) -> None:
    """One trial. ``config`` holds this trial's sampled values, e.g. ``{"optim_lr": 0.01}``.

    Each key is a dotted path into the YAML (as for ``exec-pipeline -o``): a top-level
    variable, or e.g. ``training_pipeline.init_args.steps.2.init_args.config.batch_size``.
    """
    raw = apply_values(data["raw_config"], config)  # the YAML with this trial's values
    pipeline = build_pipeline(raw, data["pipe_key"])
    # ADAPT: anything to do per trial before or after training goes here.
    pipeline.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the pipeline YAML")
    parser.add_argument("--pipe-key", default="training_pipeline")
    parser.add_argument("--num-samples", type=int, default=8)
    parser.add_argument("--storage-path", default="runs/run-trial-template")
    parser.add_argument("--num-cpus", type=int, default=None, help="local Ray only")
    args = parser.parse_args()

    raw_config = load_yaml(args.config)
    # ADAPT: the search space. Keys are dotted paths into the YAML.
    search_space = {
        "optim_lr": tune.loguniform(1e-4, 3e-2),
        "batch_size": tune.choice([16, 32, 64, 128]),
    }
    metric, mode = "val_loss", "min"  # ADAPT: what the trainer reports, and min or max
    max_epochs = int(raw_config.get("epochs", 8))

    # The same searchers and schedulers as RayTorchTrainer, by name (ADAPT: optuna, median...).
    searcher, search_space = tune_objects.build_searcher("random", metric, mode, search_space)
    scheduler = tune_objects.build_scheduler({"name": "asha", "grace_period": 2}, metric, mode,
                                             max_t=max_epochs)

    # ADAPT: on a cluster, ray.init(address=os.environ["RAY_ADDRESS"]).
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False)
    trainable = tune.with_parameters(
        tune.with_resources(run_trial, {"cpu": 1}),  # ADAPT: {"cpu": 4, "gpu": 1}
        data={"raw_config": raw_config, "pipe_key": args.pipe_key})
    tuner = tune.Tuner(
        trainable,
        param_space=search_space,
        # The scheduler already knows metric and mode: Tune refuses them twice.
        tune_config=tune.TuneConfig(num_samples=args.num_samples, search_alg=searcher,
                                    scheduler=scheduler),
        run_config=tune.RunConfig(name="run-trial",
                                  storage_path=os.path.abspath(args.storage_path)),
    )
    grid = tuner.fit()
    ray.shutdown()

    # The same results as RayTorchTrainer: a ranked table, results.json, the best config.
    experiment = Path(args.storage_path) / "run-trial"
    results = HPOResults.from_result_grid(grid, metric, mode, list(search_space),
                                          max_epochs=max_epochs,
                                          experiment_path=str(experiment))
    results.print_table()
    (experiment / "results.json").write_text(results.to_json())
    best = write_yaml(apply_values(raw_config, results.best_config),
                      experiment / "best_config.yaml")
    print(f"{results.summary()}\nBest config: {best}")


if __name__ == "__main__":
    main()
