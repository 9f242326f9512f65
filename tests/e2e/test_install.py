"""The installed environment is consistent: ``pip check`` passes with every extra installed."""

from __future__ import annotations

import subprocess
import sys


def test_pip_check_passes() -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_import_needs_no_optional_package() -> None:
    """``import itwinai_ray`` (and its CLI) must not import the searchers' packages."""
    code = ("import sys, itwinai_ray, itwinai_ray.cli; "
            "bad = [m for m in ('optuna', 'hyperopt', 'nevergrad', 'bayes_opt', 'deepspeed', "
            "'horovod', 'ray') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
