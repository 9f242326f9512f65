"""The README's first screen holds the two commands, and CI runs the test one verbatim."""

from __future__ import annotations

import re

from testkit import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    first_screen = "\n".join(text.splitlines()[:30])
    return re.findall(r"```bash\n(.+?)\n```", first_screen)


def test_readme_first_screen_has_demo_and_test_commands() -> None:
    commands = _commands()
    assert len(commands) == 2
    demo, test = commands
    assert demo.startswith("python3 -m venv .venv") and "itwinai-ray" in demo
    assert test.startswith("python3 -m venv .venv") and "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert _commands()[1] in ci.splitlines()


def test_demo_config_exists() -> None:
    demo = _commands()[0]
    config = re.search(r"--config (\S+)", demo).group(1)
    assert (ROOT / config).is_file()
