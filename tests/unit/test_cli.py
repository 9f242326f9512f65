"""The console entry in process: ``main()``, the command table, exit codes. The real console
entry in a subprocess (``python -m itwinai_ray.cli ...``): tests/e2e/test_cli_e2e.py.
"""

from __future__ import annotations

import pytest
from testkit import TESTS

from itwinai_ray.cli import COMMANDS, build_parser, main

CONFIGS = TESTS / "configs"


def test_main_in_process_and_verbose(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CONFIGS)
    assert main(["-v", "exec-pipeline", "-c", "jsonargparse_style.yaml", "n=1"]) == 0
    assert "jsonargparse: [0.0]" in capsys.readouterr().out
    assert main(["exec-pipeline", "-v", "-c", "nope.yaml"]) == 2
    assert "error: Configuration file not found" in capsys.readouterr().err


def test_command_table_drives_the_parser() -> None:
    names = {c.name for c in COMMANDS}
    parser = build_parser()
    subactions = [a for a in parser._actions if a.dest == "command"]
    assert names == set(subactions[0].choices)


def test_exit_codes_tell_some_and_all_trials_errored(capsys, monkeypatch) -> None:
    """0 all ran (stopped trials are not errors), 3 some errored (listed), 4 all errored."""
    from itwinai_ray import cli
    from itwinai_ray.commands import outcome
    from itwinai_ray.errors import TrialsFailedError
    from itwinai_ray.tuning.results import HPOResults, TrialRow

    def row(tid: str, status: str, error: str | None = None) -> TrialRow:
        return TrialRow(trial_id=tid, config={}, metric=0.1, epochs=1, status=status,
                        checkpoint=None, path=f"/runs/{tid}", error=error)

    ok = HPOResults("loss", "min", [row("a", "finished"), row("b", "stopped early")])
    assert outcome.errored_trials_code(ok) == outcome.EXIT_OK
    some = HPOResults("loss", "min", [row("a", "finished"), row("b", "error", "KeyError: x")])
    assert outcome.errored_trials_code(some) == outcome.EXIT_SOME_TRIALS_FAILED == 3
    out = capsys.readouterr().out
    assert "1 of 2 trials errored" in out and "b: KeyError: x (logs: /runs/b)" in out

    def all_failed(args: object) -> int:
        raise TrialsFailedError("All 2 trials failed. First error (a): KeyError: x.")

    monkeypatch.setattr(cli, "COMMANDS", tuple(
        c if c.name != "exec-pipeline" else type(c)(**{**c.__dict__, "run": all_failed})
        for c in cli.COMMANDS))
    assert cli.main(["exec-pipeline", "--config", "x.yaml"]) == 4
    assert "error: All 2 trials failed" in capsys.readouterr().err
