"""``itwinai-ray dashboard``: arguments, bad input and the server, in process (no Ray, no
subprocess). Journals are written with Optuna directly, under the name and study name that a
run uses (``<experiment>/optuna-journal.log``, study = the directory's name). The browser test
on a real run is tests/e2e/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

from itwinai_ray.cli import build_parser, main
from itwinai_ray.report import dashboard


@pytest.fixture(autouse=True)
def _quiet_optuna():
    """Optuna's log handler keeps the stderr of the test that first logged, which capsys
    closes: its info lines would turn into 'Logging error' noise in later tests."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


def _experiment(root: Path, name: str = "exp") -> Path:
    """A directory that ``is_experiment_dir`` accepts: one trial directory with params.json."""
    path = root / name
    (path / "trial_0").mkdir(parents=True)
    (path / "trial_0" / "params.json").write_text('{"lr": 0.1}')
    return path


def _journal(experiment: Path, n_trials: int = 3, study_name: str | None = None) -> Path:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    file = experiment / "optuna-journal.log"
    storage = JournalStorage(JournalFileBackend(str(file)))
    study = optuna.create_study(study_name=study_name or experiment.name, storage=storage)
    for lr in [0.1, 0.3, 0.05][:n_trials]:
        study.enqueue_trial({"lr": lr})
    study.optimize(lambda trial: 10 * trial.suggest_float("lr", 0.01, 1.0), n_trials=n_trials)
    return file


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


# --------------------------------------------------------------------------- arguments
def test_defaults_are_loopback_and_a_free_port() -> None:
    args = build_parser().parse_args(["dashboard", "runs/x"])
    assert (args.experiment, args.host, args.port) == ("runs/x", "127.0.0.1", 0)


def test_port_and_host_are_taken() -> None:
    args = build_parser().parse_args(["dashboard", "d", "--port", "8080", "--host", "0.0.0.0"])
    assert (args.port, args.host) == (8080, "0.0.0.0")


@pytest.mark.parametrize("port", ["http", "-1", "70000"])
def test_bad_port_is_a_usage_error(port: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["dashboard", "d", "--port", port])
    assert exc.value.code == 2
    assert "--port" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input
def test_missing_directory(tmp_path, capsys) -> None:
    assert main(["dashboard", str(tmp_path / "nope")]) == 2
    assert "does not exist" in _error_line(capsys)


def test_not_an_experiment_names_the_ones_inside(tmp_path, capsys) -> None:
    _experiment(tmp_path, "inner")
    assert main(["dashboard", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert "is not a Ray Tune experiment directory" in line and "inner" in line


def test_missing_journal_names_the_fix_and_creates_nothing(tmp_path, capsys) -> None:
    exp = _experiment(tmp_path)
    assert main(["dashboard", str(exp)]) == 2
    line = _error_line(capsys)
    assert "No trial journal" in line and f"itwinai-ray results {exp} --journal" in line
    assert not (exp / "optuna-journal.log").exists()


def test_corrupted_journal_names_the_fix(tmp_path, capsys) -> None:
    exp = _experiment(tmp_path)
    file = _journal(exp)
    lines = file.read_text().splitlines(keepends=True)
    lines[1] = '{"op_code": 4, "trial_id"\n'  # a torn line in the middle, not the last one
    file.write_text("".join(lines))
    assert main(["dashboard", str(exp)]) == 2
    line = _error_line(capsys)
    assert "is corrupted" in line and "--journal" in line


def test_journal_of_garbage_has_no_study(tmp_path, capsys) -> None:
    exp = _experiment(tmp_path)
    (exp / "optuna-journal.log").write_text("not a journal\n")
    assert main(["dashboard", str(exp)]) == 2
    line = _error_line(capsys)
    assert "has no study 'exp' (it is empty)" in line and "--journal" in line


def test_journal_of_another_experiment(tmp_path, capsys) -> None:
    exp = _experiment(tmp_path)
    _journal(exp, study_name="other")
    assert main(["dashboard", str(exp)]) == 2
    assert "it holds only 'other'" in _error_line(capsys)


def test_port_in_use(tmp_path, capsys) -> None:
    exp = _experiment(tmp_path)
    _journal(exp)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["dashboard", str(exp), "--port", str(taken.getsockname()[1])]) == 2
    assert "Cannot listen on 127.0.0.1:" in _error_line(capsys)


# --------------------------------------------------------------------------- serving
def test_serves_the_study_of_the_journal(tmp_path) -> None:
    exp = _experiment(tmp_path)
    _journal(exp)
    storage, study = dashboard.open_journal(exp)
    server = dashboard.serve(storage, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as response:
            summaries = json.load(response)["study_summaries"]
        assert [s["study_name"] for s in summaries] == [study] == ["exp"]
        study_id = summaries[0]["study_id"]
        with urllib.request.urlopen(f"{base}/api/studies/{study_id}", timeout=30) as response:
            trials = json.load(response)["trials"]
        assert sorted(t["values"][0] for t in trials) == pytest.approx([0.5, 1.0, 3.0])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_prints_url_and_tunnel_and_stops_on_ctrl_c(tmp_path, capsys, monkeypatch) -> None:
    exp = _experiment(tmp_path)
    _journal(exp)

    def interrupted(self, poll_interval=0.5):
        raise KeyboardInterrupt

    monkeypatch.setattr(dashboard._Server, "serve_forever", interrupted)
    assert main(["dashboard", str(exp)]) == 0
    out, err = capsys.readouterr()
    port = int(out.split("http://127.0.0.1:")[1].split("/")[0])
    assert port > 0 and f"ssh -N -L {port}:127.0.0.1:{port} " in out
    assert "warning" not in err and "Dashboard stopped." in err


def test_other_host_warns(tmp_path, capsys, monkeypatch) -> None:
    exp = _experiment(tmp_path)
    _journal(exp)
    monkeypatch.setattr(dashboard._Server, "serve_forever",
                        lambda self, poll_interval=0.5: None)
    assert main(["dashboard", str(exp), "--host", "0.0.0.0"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("warning: --host 0.0.0.0:") and "SSH tunnel" in err
    assert "http://127.0.0.1:" in out and ":127.0.0.1:" in out


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("10.1.2.3", False), ("login01", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert dashboard.is_loopback(host) is loopback


def test_tunnel_targets_the_bound_address() -> None:
    assert ":10.1.2.3:8080 " in dashboard.tunnel_command("10.1.2.3", 8080)
    assert dashboard.tunnel_command("127.0.0.1", 8080).startswith(
        "ssh -N -L 8080:127.0.0.1:8080 ")
