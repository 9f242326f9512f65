"""Lazy imports, each checked in a fresh interpreter (a subprocess): the pure modules do not
import Ray, building a strategy does not import its optional package. (Moved here from the
unit files of those modules: the unit tier starts no process.)"""

from __future__ import annotations

import subprocess
import sys

from testkit import ROOT, subprocess_env


def test_import_does_not_import_ray():
    code = ("import sys, itwinai_ray.tuning.search_space, itwinai_ray.tuning.algorithms; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backend_modules_do_not_import_ray() -> None:
    code = ("import sys, itwinai_ray.tuning.resources, itwinai_ray.backends.ray.driver; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pareto_module_imports_without_ray():
    code = ("import sys, itwinai_ray.tuning.pareto; "
            "assert 'ray' not in sys.modules and 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_building_does_not_import_deepspeed() -> None:
    code = ("import sys; from itwinai_ray.distributed import get_strategy; "
            "get_strategy({'name': 'deepspeed', 'config': {'zero_optimization': {'stage': 1}}}); "
            "assert 'deepspeed' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(), timeout=60)


def test_building_does_not_import_horovod() -> None:
    code = ("import sys; from itwinai_ray.distributed import get_strategy; "
            "get_strategy({'name': 'horovod', 'scale_lr': True}); "
            "assert 'horovod' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env(), timeout=60)
