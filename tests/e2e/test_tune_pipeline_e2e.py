"""The run_trial path on a real local Ray: a trial fails when the tuned metric is never
reported.
"""

from __future__ import annotations

import pytest
from testkit import ROOT

from itwinai_ray.errors import ItwinaiRayError
from itwinai_ray.tuning import pipeline_hpo

QUICK = ROOT / "tutorials" / "01-quickstart-hpo"
TRAINER = "training_pipeline.init_args.steps.2.init_args"
LR = {"type": "loguniform", "lower": 1e-4, "upper": 1e-2}


@pytest.mark.timeout(300)
def test_tune_pipeline_trial_fails_when_the_metric_is_never_reported(tmp_path) -> None:
    """A real run: the trial errors with the message, it does not look like a success."""
    with pytest.raises(ItwinaiRayError) as err:
        pipeline_hpo.tune_pipeline(
            QUICK / "pipeline.yaml", search_space={"optim_lr": LR},
            tune_config={"num_samples": 1, "metric": "val_f1", "mode": "max"},
            run_config={"name": "no-metric", "storage_path": str(tmp_path)},
            ray_init={"num_cpus": 1}, overrides=["epochs=1"])
    message = str(err.value)
    assert "All 1 trials failed" in message
    assert "not the tuned metric 'val_f1'" in message
