"""Where output goes (fast tier: no Ray, no subprocess): the quiet driver, the captured file
descriptors of trial processes, Ray's session logs kept with the experiment, -v / -q."""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys

import pytest

from itwinai_ray.backends.ray import output as _ray_output
from itwinai_ray.cli import build_parser
from itwinai_ray.commands.outcome import output_level, output_settings
from itwinai_ray.tuning.progress import ProgressState, ProgressView


def test_quiet_driver_sends_prints_and_ray_logs_to_the_file_and_yields_the_terminal(
        tmp_path) -> None:
    log = tmp_path / "exp" / "logs" / "driver.log"
    ray_logger = logging.getLogger("ray")
    own = io.StringIO()
    ray_logger.addHandler(terminal_handler := logging.StreamHandler(own))
    before = sys.stdout
    try:
        with _ray_output.quiet_driver(log) as terminal:
            assert terminal is before
            print("Configuration for experiment")  # Tune's banner
            ray_logger.warning("Token authentication is enabled")
            terminal.write("")  # the progress view still reaches the terminal
        assert sys.stdout is before
        assert terminal_handler in ray_logger.handlers  # restored
        ray_logger.warning("after")
    finally:
        ray_logger.removeHandler(terminal_handler)
    text = log.read_text()
    assert "Configuration for experiment" in text and "Token authentication" in text
    assert "Token authentication" not in own.getvalue() and "after" in own.getvalue()


def test_capture_fds_catches_output_below_python_and_restores_it(tmp_path, capfd) -> None:
    path = tmp_path / "trial" / "worker-0.log"
    stdout = open(1, "w", closefd=False)  # noqa: SIM115 - a worker's sys.stdout: fd 1
    with _ray_output.capture_fds(path):
        print("from python", file=stdout, flush=True)
        os.write(2, b"from C\n")  # what a C extension or a subprocess writes
    print("after")
    assert path.read_text().splitlines() == ["from python", "from C"]
    out, err = capfd.readouterr()
    assert "after" in out and "from python" not in out and "from C" not in err


def test_capture_fds_leaves_output_alone_where_it_cannot_write(tmp_path, capfd,
                                                              caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING), _ray_output.capture_fds(blocker / "x.log"):
        os.write(1, b"still here\n")
    assert "still here" in capfd.readouterr().out
    assert "stays in Ray's logs" in caplog.text


def test_keep_session_logs_copies_only_log_files(tmp_path) -> None:
    session = tmp_path / "session_1"
    (session / "logs" / "events").mkdir(parents=True)
    for name in ("raylet.out", "gcs_server.err", "python-core-driver-1.log", "metrics.prom"):
        (session / "logs" / name).write_text(name)
    kept = _ray_output.keep_session_logs(str(session), str(tmp_path / "exp"))
    assert kept == tmp_path / "exp" / "logs" / "ray"
    assert sorted(p.name for p in kept.iterdir()) == [
        "gcs_server.err", "python-core-driver-1.log", "raylet.out"]
    assert _ray_output.keep_session_logs(None, str(tmp_path / "exp")) is None


@pytest.mark.parametrize(("flags", "level", "expected"), [
    ([], 0, {"verbose": 0, "progress": True}),
    (["-v"], 1, {"verbose": 1, "progress": True}),
    (["-q"], -1, {"verbose": 0, "progress": False}),
])
def test_verbose_and_quiet_flags(flags: list[str], level: int, expected: dict) -> None:
    args = build_parser().parse_args([*flags, "exec-pipeline", "-c", "x.yaml"])
    assert output_level(args) == level
    assert output_settings(level, 0, True) == expected
    assert output_settings(level, 2, True)["verbose"] == (2 if level >= 0 else 2)


def test_verbose_and_quiet_exclude_each_other(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["-v", "-q", "exec-pipeline", "-c", "x.yaml"])
    assert exc.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_progress_view_pickles_without_its_terminal() -> None:
    """Tune pickles its callbacks with the experiment state: the stream cannot go along."""
    view = ProgressView(ProgressState(metric="loss", mode="min"), stream=sys.stdout)
    copy = pickle.loads(pickle.dumps(view))
    assert copy.stream is None and view.stream is sys.stdout
    assert copy.state.metric == "loss"


def test_an_errored_trial_points_to_its_log_files(tmp_path) -> None:
    from itwinai_ray.tuning.results import TrialRow

    row = TrialRow(trial_id="t", config={}, metric=None, epochs=0, status="error",
                   checkpoint=None, path=str(tmp_path))
    assert row.logs() == str(tmp_path)
    (tmp_path / "worker-0.log").write_text("")
    assert row.logs() == f"{tmp_path}/worker-0.log, worker-<rank>.log"
    (tmp_path / "error.txt").write_text("")
    assert row.logs() == f"{tmp_path}/error.txt, worker-<rank>.log"
