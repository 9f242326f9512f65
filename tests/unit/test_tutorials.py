"""The tutorials' READMEs: each has its commands, and the diff that tutorial 02 shows is the
real diff. The READMEs run as written: tests/e2e/test_tutorials_e2e.py.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from testkit import ROOT

TUTORIALS = ROOT / "tutorials"


def bash_blocks(readme: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", readme.read_text(), flags=re.S)


def test_every_tutorial_has_a_readme_with_commands() -> None:
    for folder in ("01-quickstart-hpo", "02-distributed-hpo"):
        assert bash_blocks(TUTORIALS / folder / "README.md"), folder
    assert (TUTORIALS / "03-slurm" / "README.md").is_file()


def _strip(text: str) -> list[str]:
    lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in text.splitlines()]
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_02_readme_diff_is_the_real_diff() -> None:
    folder = TUTORIALS / "02-distributed-hpo"
    real = [line for line in difflib.unified_diff(
        _strip((folder / "pipeline.yaml").read_text()), _strip((folder / "hpo.yaml").read_text()),
        lineterm="", n=0) if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    [shown] = re.findall(r"```diff\n(.*?)```", (folder / "README.md").read_text(), flags=re.S)
    shown_lines = [line for line in _strip(shown) if line[:1] in "+-"]
    assert sorted(shown_lines) == sorted(real)
