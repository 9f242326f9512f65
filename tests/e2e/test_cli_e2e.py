"""The real console entry, run in a subprocess: ``python -m itwinai_ray.cli ...``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from testkit import TESTS

CONFIGS = TESTS / "configs"


def run_cli(*args: str, cwd: Path = CONFIGS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "itwinai_ray.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize(("config", "extra", "expected"), [
    ("jsonargparse_style.yaml", [], "jsonargparse: [0.0, 3.0, 6.0, 9.0]"),
    ("hydra_style.yaml", ["--pipe-key", "pipelines.training"], "hydra: [0.0, 10.0, 20.0]"),
    ("mixed_style.yaml", ["-o", "batch_size=2"], "mixed: [0.0, 3.0]"),
])
def test_exec_pipeline_each_style(config: str, extra: list[str], expected: str) -> None:
    proc = run_cli("exec-pipeline", "--config", config, *extra)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout
    assert "Executing pipeline" in proc.stderr  # INFO logging of the itwinai_ray logger


def test_overrides_option_and_positional_and_steps() -> None:
    proc = run_cli("exec-pipeline", "-c", "jsonargparse_style.yaml", "--steps", "0:3",
                   "-o", "n=2", "training_pipeline.init_args.steps.2.init_args.prefix=out",
                   "scale=1e-1")
    assert proc.returncode == 0, proc.stderr
    assert "out: [0.0, 0.2]" in proc.stdout


def test_print_config_prints_resolved_yaml_and_exits() -> None:
    proc = run_cli("exec-pipeline", "-c", "hydra_style.yaml", "--print-config", "n=9",
                   "+added=hello")
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["pipelines"]["training"]["steps"]["getter"]["n"] == 9
    assert cfg["added"] == "hello"
    assert "hydra:" not in proc.stdout  # not executed


@pytest.mark.parametrize(("args", "pattern"), [
    (["-c", "missing.yaml"], "Configuration file not found"),
    (["-c", "jsonargparse_style.yaml", "-p", "trainig_pipeline"],
     "Did you mean 'training_pipeline'"),
    (["-c", "jsonargparse_style.yaml", "nokey=1"], "key 'nokey' does not exist"),
    (["-c", "jsonargparse_style.yaml", "-o", "no_equals"], "Malformed override"),
    (["-c", "jsonargparse_style.yaml", "--steps", "a:b"], "Invalid steps 'a:b'"),
    (["-c", "jsonargparse_style.yaml",
      "+training_pipeline.init_args.steps.1.init_args.factr=3"], "Did you mean 'factor'"),
    (["-c", "jsonargparse_style.yaml",
      "training_pipeline.init_args.steps.0.class_path=nope.Cls"], "cannot import 'nope.Cls'"),
])
def test_bad_inputs_exit_2_with_one_line(args: list[str], pattern: str) -> None:
    assert_one_line_error(run_cli("exec-pipeline", *args), pattern)


def test_yaml_syntax_error_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("a: [1, 2\nb: 3\n")
    assert_one_line_error(run_cli("exec-pipeline", "-c", "bad.yaml", cwd=tmp_path), "line ")


def test_user_code_error_keeps_traceback(tmp_path: Path) -> None:
    (tmp_path / "boom.yaml").write_text(
        "training_pipeline:\n  _target_: toy_components.ToyPipeline\n"
        "  steps: [{_target_: toy_components.Boom}]\n")
    proc = run_cli("exec-pipeline", "-c", str(tmp_path / "boom.yaml"))
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "boom in user code" in proc.stderr


def test_help_explains_itself() -> None:
    top = run_cli("--help")
    assert top.returncode == 0 and "exec-pipeline" in top.stdout and "example" in top.stdout
    sub = run_cli("exec-pipeline", "--help")
    assert sub.returncode == 0
    for text in ("--config", "--pipe-key", "--steps", "--print-config", "-o", "examples:"):
        assert text in sub.stdout


def test_missing_subcommand_is_a_usage_error() -> None:
    proc = run_cli()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
