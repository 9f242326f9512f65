"""The bad-input list of the reliability issue, on the real HPO digits pipeline: each item
fails with the project's own error, a message naming what is wrong, and before Ray starts.

Items checked at unit level elsewhere are run here once more through the user's path
(YAML + overrides -> RayTorchTrainer). Through the CLI in a subprocess, and a local Ray too
small for one trial: tests/e2e/test_bad_input_e2e.py. Two items need a cluster and live where
one runs: GPUs on a cluster without any (tests/e2e/test_reliability.py) and a metric that the
trainer never reports (tests/e2e/test_tune_pipeline_e2e.py; tests/e2e/test_reliability.py for
stop keys).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testkit import ROOT

from itwinai_ray.config import load_pipeline
from itwinai_ray.errors import (
    ConfigurationError,
    ItwinaiRayError,
    ResourceError,
    SearchSpaceError,
)

CONFIG = ROOT / "tests" / "configs" / "hpo_digits.yaml"
HPO = "hpo_pipeline.init_args.steps.2.init_args"


def _run(tmp_path: Path, *overrides: str) -> None:
    pipe = load_pipeline(CONFIG, "hpo_pipeline",
                         overrides=[f"storage={tmp_path / 'results'}", *overrides])
    pipe.execute()


@pytest.mark.parametrize(("overrides", "error", "pattern"), [
    # an unknown search-space type, with a suggestion
    ([f"{HPO}.search_space.optim_lr.type=loguniformm"], SearchSpaceError,
     r"'optim_lr': unknown type 'loguniformm'\. Did you mean 'loguniform'"),
    # lower > upper
    ([f"{HPO}.search_space.optim_lr={{type: uniform, lower: 0.1, upper: 0.01}}"],
     SearchSpaceError, r"'optim_lr'.*lower <= upper, got lower=0.1, upper=0.01"),
    # loguniform with lower <= 0
    ([f"{HPO}.search_space.optim_lr.lower=0"], SearchSpaceError,
     r"'optim_lr'.*loguniform needs lower > 0"),
    # an empty choice list
    ([f"{HPO}.search_space.batch_size.categories=[]"], SearchSpaceError,
     r"'batch_size'.*empty 'categories' list"),
    # mode not in min/max
    ([f"{HPO}.tune_config.mode=minimize"], ConfigurationError,
     r"mode is 'minimize', but must be 'min' or 'max'"),
    # unknown scheduler and searcher names, with suggestions
    ([f"{HPO}.tune_config.scheduler.name=ashaa"], ConfigurationError,
     r"Unknown scheduler 'ashaa'\. Did you mean 'asha'\?"),
    ([f"+{HPO}.tune_config.search_alg=optna"], ConfigurationError,
     r"Unknown searcher 'optna'\. Did you mean 'optuna'\?"),
    # a searcher that does not support the space: grid values for Optuna
    ([f"+{HPO}.tune_config.search_alg=optuna",
      f"{HPO}.search_space.batch_size={{type: grid_search, values: [32, 64]}}"],
     SearchSpaceError, r"optuna cannot sample grid_search values for 'batch_size'; "
                       r"use type: choice"),
    # num_samples <= 0
    ([f"{HPO}.tune_config.num_samples=0"], ConfigurationError, r"num_samples is 0, but must"),
    ([f"{HPO}.tune_config.num_samples=-3"], ConfigurationError, r"num_samples is -3, but must"),
    ([f"{HPO}.tune_config.num_samples=2.5"], ConfigurationError, r"num_samples is 2.5"),
    # a float domain, or one bad category among good ones, for an integer parameter
    ([f"{HPO}.search_space.batch_size={{type: uniform, lower: 16.5, upper: 64.5}}"],
     ConfigurationError, r"'batch_size' is an integer.*gives floats.*randint"),
    ([f"{HPO}.search_space.batch_size={{type: choice, categories: [64, 32.5]}}"],
     ConfigurationError, r"'batch_size' = 32.5 is not a valid value: Input should be a valid "
                         r"integer, got a number with a fractional part \(input 32.5\)\. Fix"),
    # reliability settings
    ([f"+{HPO}.tune_config.stop={{val_loss: fast}}"], ConfigurationError,
     r"tune_config.stop.val_loss is 'fast', but must be a finite number"),
    ([f"+{HPO}.tune_config.stop=[]"], ConfigurationError,
     r"tune_config.stop is \[\], but must be a non-empty mapping"),
    ([f"+{HPO}.tune_config.time_budget_s=-5"], ConfigurationError,
     r"time_budget_s is -5, but must be a number of seconds > 0"),
    ([f"+{HPO}.run_config.resume=maybe"], ConfigurationError,
     r"run_config.resume is 'maybe', but must be true.*'auto'"),
    ([f"+{HPO}.run_config.max_failures=-2"], ConfigurationError,
     r"run_config.max_failures is -2, but must be an integer >= 0"),
    ([f"+{HPO}.run_config.worker_max_failures=one"], ConfigurationError,
     r"run_config.worker_max_failures is 'one'"),
    ([f"+{HPO}.run_config.fail_fast=sometimes"], ConfigurationError,
     r"run_config.fail_fast is 'sometimes', but must be true or false"),
    ([f"+{HPO}.run_config.max_failure=2"], ConfigurationError,
     r"Unknown key 'max_failure' in run_config\. Did you mean 'max_failures'\?"),
])
def test_bad_hpo_input_fails_before_ray_starts(tmp_path, overrides, error, pattern) -> None:
    import ray

    with pytest.raises(error, match=pattern):
        _run(tmp_path, *overrides)
    assert not ray.is_initialized()


def test_storage_path_that_cannot_be_written_fails_before_ray_starts(tmp_path) -> None:
    import ray

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError, match=r"storage_path .*a_file/results' cannot be "
                                                 r"created: Not a directory.*writable"):
        load_pipeline(CONFIG, "hpo_pipeline", overrides=[f"storage={blocker}/results"]).execute()
    assert not ray.is_initialized()


def test_storage_without_enough_free_disk_fails_before_ray_starts(tmp_path) -> None:
    import ray

    with pytest.raises(ResourceError, match=r"GiB free, less than the 1e\+06 GiB required.*"
                                            r"min_free_disk_gb"):
        _run(tmp_path, f"+{HPO}.run_config.min_free_disk_gb=1000000")
    assert not ray.is_initialized()


def test_resume_with_nothing_to_resume_fails_before_ray_starts(tmp_path) -> None:
    import ray

    with pytest.raises(ConfigurationError, match=r"Nothing to resume: .*hpo-digits holds no "
                                                 r"saved experiment state.*resume: auto"):
        _run(tmp_path, f"+{HPO}.run_config.resume=true")
    assert not ray.is_initialized()


def test_errors_are_the_projects_own() -> None:
    for cls in (ConfigurationError, SearchSpaceError, ResourceError):
        assert issubclass(cls, ItwinaiRayError)


def test_unwritable_storage_through_the_cli_is_one_line_exit_2(capsys) -> None:
    """The CLI saves the pipeline source into the experiment directory first: that must not
    turn an unwritable storage_path into a raw traceback (issue 15, part 9)."""
    import ray

    from itwinai_ray.cli import main

    hpo = CONFIG.parents[2] / "tutorials" / "00-digits-pipeline" / "hpo.yaml"
    code = main(["exec-pipeline", "--config", str(hpo), "run_dir=/proc/nope/runs"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "error: storage_path '/proc/nope/runs' cannot be created: No such file" in err, err
    assert not ray.is_initialized()
