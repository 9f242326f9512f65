"""Bad input on the real digits pipeline: one clear line on stderr, exit 2, no traceback."""

from __future__ import annotations

import re
import subprocess

import pytest
from testkit import PYTHON, ROOT, subprocess_env

CONFIG = ROOT / "tutorials" / "00-digits-pipeline" / "pipeline.yaml"
TRAINER = "training_pipeline.init_args.steps.2.init_args"


@pytest.mark.parametrize(("override", "pattern"), [
    (f"{TRAINER}.strategy=dpp", r"Unknown strategy 'dpp'.*Did you mean 'ddp'"),
    (f"{TRAINER}.config.optimizer=adamm", r"Unknown optimizer 'adamm'.*Did you mean 'adam'"),
    (f"{TRAINER}.config.loss=mse_loss", r"Unknown loss 'mse_loss'.*Available:"),
    (f"{TRAINER}.epochs=0", r"epochs=0 must be >= 1"),
    (f"+{TRAINER}.learning_rate=0.1", r"DigitsTrainer got an unexpected argument 'learning_rate'.*Accepted arguments: config, epochs"),
    ("training_pipeline.init_args.steps.1.class_path=itwinai_ray.examples.digits.DigitsGetter"
     " ~training_pipeline.init_args.steps.1.init_args",
     r"Step 1 .*DigitsGetter.*takes 0.*returned 1"),
])
def test_bad_input_is_one_clear_line(override: str, pattern: str, tmp_path) -> None:
    proc = subprocess.run(
        [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "--config", str(CONFIG),
         "-o", "epochs=1", "-o", f"run_dir={tmp_path}", *override.split()],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert re.search(pattern, errors[0]), errors[0]


def test_a_stop_time_that_is_not_a_time_fails_before_ray_starts(tmp_path) -> None:
    hpo = ROOT / "tutorials" / "00-digits-pipeline" / "hpo.yaml"
    proc = subprocess.run(
        [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "--config", str(hpo),
         "-o", "epochs=1", "-o", f"run_dir={tmp_path}"],
        cwd=tmp_path, env=subprocess_env(ITWINAI_RAY_STOP_AT="tomorrow"), capture_output=True,
        text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ITWINAI_RAY_STOP_AT='tomorrow' is not a time" in errors[0], \
        proc.stderr
    assert "One trial needs" not in proc.stderr + proc.stdout  # Ray was never asked
    assert not list(tmp_path.rglob("driver.log")), "Ray's output was being captured"
