"""Bad input through the real console entry (a subprocess each) and a local Ray too small for
one trial. The in-process items of the list: tests/unit/test_bad_input.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from testkit import PYTHON, ROOT, subprocess_env

CONFIG = ROOT / "tests" / "configs" / "hpo_digits.yaml"
HPO = "hpo_pipeline.init_args.steps.2.init_args"


def _cli(tmp_path: Path, config: Path, *args: str) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "-c", str(config), *args],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=180)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    return proc.returncode, errors, proc.stderr


def test_cli_yaml_syntax_error_and_resume_without_hpo_step(tmp_path) -> None:
    """One process each: a YAML syntax error names its line; --resume on a pipeline without
    an HPO step says so. One 'error:' line, exit 2, no traceback."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("hpo_pipeline:\n  class_path: itwinai_ray.Pipeline\n"
                      "  init_args: {steps: [1, 2}\n")
    code, errors, stderr = _cli(tmp_path, broken, "-p", "hpo_pipeline")
    assert code == 2 and "Traceback" not in stderr, stderr
    assert len(errors) == 1 and re.search(r"YAML syntax error in .*broken\.yaml, line 3",
                                          errors[0]), errors
    code, errors, stderr = _cli(tmp_path, CONFIG, "-p", "training_pipeline", "--resume")
    assert code == 2 and "Traceback" not in stderr, stderr
    assert errors == ["error: --resume: the pipeline has no HPO step (RayTorchTrainer) whose "
                      "experiment could be resumed."]


@pytest.mark.timeout(300)
def test_a_local_ray_too_small_for_one_trial_names_the_ray_init_fix(tmp_path) -> None:
    """Issue 15, part 3: the demo's 2-worker trials on a local Ray of 1 logical CPU. The
    one-line error names the need, the capacity and the ray_init setting that fixes it."""
    hpo = ROOT / "tutorials" / "00-digits-pipeline" / "hpo.yaml"
    code, errors, stderr = _cli(
        tmp_path, hpo, f"run_dir={tmp_path / 'runs'}",
        "training_pipeline.init_args.steps.2.init_args.ray_init.num_cpus=1")
    assert code == 2 and "Traceback" not in stderr, stderr
    assert len(errors) == 1, stderr
    assert "One trial needs 2.01 CPU" in errors[0] and "the cluster has 1 CPU" in errors[0]
    assert "set ray_init: {num_cpus: 3} (or more)" in errors[0], errors[0]
    assert not list((tmp_path / "runs").glob("*/_trial_fn_*"))  # no trial ran
