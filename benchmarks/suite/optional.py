"""Optional items: other engineers' benchmark scripts, run as they are when they exist.

``search_quality.py`` (issue 7) and ``strategy_throughput.py`` (issue 6) own their numbers and
their README sections; the suite runs each in a subprocess (``--quick`` when the script
accepts it and the suite is quick), keeps the exit status and the last lines of output, and
lists them in the table without a target of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.suite import common
from benchmarks.suite.common import Measurement

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"search_quality": "search_quality.py", "strategy_throughput": "strategy_throughput.py"}


def available() -> dict[str, str]:
    """The optional scripts present in this checkout: {item name: path}."""
    return {k: os.path.join(HERE, v) for k, v in SCRIPTS.items()
            if os.path.isfile(os.path.join(HERE, v))}


def runner(name: str, path: str, timeout_s: float = 1800):
    def run(quick: bool) -> list[Measurement]:
        help_text = subprocess.run([sys.executable, path, "--help"], capture_output=True,
                                   text=True, timeout=120).stdout
        cmd = [sys.executable, path] + (["--quick"] if quick and "--quick" in help_text else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              cwd=os.path.dirname(HERE))
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        print("\n".join(f"  {line}" for line in tail), flush=True)
        return [Measurement(f"opt {name}", f"exit status ({os.path.basename(path)})",
                            float(proc.returncode), "0 (numbers: its README section)",
                            proc.returncode == 0,
                            details={"command": " ".join(cmd[1:]), "output_tail": tail,
                                     "load1": common.load1()})]

    return run
