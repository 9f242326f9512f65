"""Tutorial 02 runs as its README writes it, and ``itwinai-ray dashboard`` shows its HPO live
in a real browser (issue 17).

The tutorial's first bash block (a plain run, the HPO: 4 trials of 2-process DDP groups, two
at a time, and the best config re-run) runs verbatim, as in test_tutorials_e2e.py. Once the
HPO's journal holds a finished trial and a running one, the dashboard starts on a free
loopback port and headless chromium (Debian's ``chromium`` + ``chromium-driver``, installed by
``.ci/run``) reads the rendered pages; after the run, the page must agree with
``results.json``. One run serves both checks: the tutorial's HPO is the run the dashboard
watches. The screenshot of the study page goes to
``$DASHBOARD_SCREENSHOT`` when set: ``docs/img/dashboard.png`` is made this way (README,
"Watching and reading results"), else into the test's tmp directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from testkit import (
    PYTHON,
    ROOT,
    bash_blocks,
    bash_env,
    free_port,
    stop_group,
    subprocess_env,
    tutorial_workdir,
)

TUTORIAL = ROOT / "tutorials" / "02-distributed-hpo" / "README.md"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
STUDY = "distributed-hpo"
#: How long one page may take to show what it should (it polls the server by itself).
PAGE_WAIT_S = 30


@pytest.fixture
def browser(tmp_path):
    """Headless chromium through its Debian driver (selenium then downloads nothing)."""
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
               if path is None]
    if missing:
        reason = (f"{' and '.join(missing)} not installed: apt-get install chromium "
                  f"chromium-driver (.ci/run does)")
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run under CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1200", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _page_text(browser: Any, url: str, *expected: str) -> str:
    """The rendered text of ``url`` once it shows every ``expected`` string (a React page:
    its text comes after the API calls it makes)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    try:
        WebDriverWait(browser, PAGE_WAIT_S, poll_frequency=0.5).until(
            lambda b: all(s in b.find_element(By.TAG_NAME, "body").text for s in expected))
    except TimeoutException:
        pass  # the assertion below shows what the page did show
    text = browser.find_element(By.TAG_NAME, "body").text
    missing = [s for s in expected if s not in text]
    assert not missing, f"{url} does not show {missing}:\n{text[:3000]}"
    return text


def _journal_trials(experiment: Path) -> list[Any]:
    """The trials as Optuna reads the journal now ([] while it has no study yet)."""
    from itwinai_ray.errors import ConfigurationError
    from itwinai_ray.tuning.journal import load_study

    try:
        return load_study(experiment).get_trials(deepcopy=False)
    except ConfigurationError:  # not written yet
        return []


def _wait_until_live(experiment: Path, run: subprocess.Popen, log: Path) -> None:
    """Until the journal holds a finished trial with its value and a running one."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert run.poll() is None, f"the run ended first:\n{log.read_text()[-3000:]}"
        trials = _journal_trials(experiment)
        if (any(t.state.name == "RUNNING" for t in trials)
                and any(t.value is not None for t in trials)):
            return
        time.sleep(0.5)
    pytest.fail(f"no finished and running trials in the journal:\n{log.read_text()[-3000:]}")


def _start_dashboard(experiment: Path) -> tuple[subprocess.Popen, str]:
    """``itwinai-ray dashboard`` on a free loopback port; its URL from the line it prints."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "itwinai_ray.cli", "dashboard", str(experiment),
         "--port", str(free_port())],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/)", first)
    if match is None:
        _stop(proc, signal.SIGKILL)
        pytest.fail(f"no URL in the dashboard's output: {first}{proc.stderr.read()}")
    assert "ssh -N -L " in proc.stdout.readline()
    return proc, match.group(1)


def _stop(proc: subprocess.Popen, sig: int) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _check_live_page(browser: Any, url: str, experiment: Path) -> None:
    """While trials run: the study on the home page, each trial with its state and value."""
    _page_text(browser, f"{url}dashboard", STUDY)
    trials = _journal_trials(experiment)
    numbers = ",".join(str(t.number) for t in trials)
    finished = [t for t in trials if t.value is not None]
    text = _page_text(browser, f"{url}dashboard/studies/0/trials?numbers={numbers}",
                      f"{STUDY} (id=0)", *(f"Trial {t.number}" for t in trials),
                      "Running", *(repr(t.value) for t in finished))
    for trial in finished:
        state = trial.state.name.capitalize()
        assert re.search(rf"Trial {trial.number} \(trial_id=\d+\)\n{state}", text), text[:3000]


def _check_final_page(browser: Any, url: str, experiment: Path, shot: Path) -> None:
    """After the run: as many trials as results.json, and its best value as the best trial."""
    results = json.loads((experiment / "results.json").read_text())
    count, best = len(results["trials"]), results["best"]["metric"]
    _page_text(browser, f"{url}dashboard/studies/0/trials", f"{count} Trials")
    text = _page_text(browser, f"{url}dashboard/studies/0", "Best Trial (number=",
                      "Hyperparameter Importance")
    shown = re.search(r"Best Trial \(number=\d+\)\n(\S+)", text)
    assert shown and float(shown.group(1)) == pytest.approx(best, rel=1e-9), text[:3000]
    time.sleep(2)  # the plots finish drawing
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))


def _check_tutorial_results(experiment: Path, stderr: str) -> None:
    """What tutorial 02 promises: 4 trials of 2-process DDP groups, a runnable best config."""
    results = json.loads((experiment / "results.json").read_text())
    trials = results["trials"]
    assert len(trials) == 4
    assert all(t["status"] != "error" for t in trials), trials
    reports = [json.loads(line) for f in experiment.glob("*/result.json")
               for line in f.read_text().splitlines() if line.strip()]
    assert len(reports) >= 4
    assert {r["world_size"] for r in reports} == {2}  # every trial was a 2-process DDP group
    best = results["best"]["config"]
    best_config = yaml.safe_load((experiment / "best_config.yaml").read_text())
    trainer = best_config["training_pipeline"]["init_args"]["steps"][2]
    assert trainer["class_path"] == "itwinai_ray.examples.digits.DigitsTrainer"
    assert trainer["init_args"]["config"]["optim_lr"] == pytest.approx(best["optim_lr"])
    assert trainer["init_args"]["config"]["hidden_size"] == best["hidden_size"]
    assert stderr.count("epoch 4/4") >= 2  # the plain run and the best-config re-run


@pytest.mark.timeout(600)
def test_02_runs_as_written_and_the_dashboard_shows_it_live(tmp_path, browser) -> None:
    cwd = tutorial_workdir(tmp_path)
    experiment = cwd / "runs" / STUDY / STUDY
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        run = subprocess.Popen(["bash", "-euo", "pipefail", "-c", bash_blocks(TUTORIAL)[0]],
                               cwd=cwd, env=bash_env(), stdout=stdout, stderr=stderr,
                               text=True, start_new_session=True)
    dashboard = None
    try:
        _wait_until_live(experiment, run, err)
        dashboard, url = _start_dashboard(experiment)
        _check_live_page(browser, url, experiment)  # shows a trial "Running"
        assert run.wait(timeout=480) == 0, f"{out.read_text()[-3000:]}\n{err.read_text()[-5000:]}"
        _check_tutorial_results(experiment, err.read_text())
        shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
        _check_final_page(browser, url, experiment, shot)
        assert _stop(dashboard, signal.SIGINT) == 0  # Ctrl-C stops it cleanly
        assert "Traceback" not in dashboard.stderr.read()
    finally:
        if dashboard is not None:
            _stop(dashboard, signal.SIGKILL)
        stop_group(run, signal.SIGINT, 60)  # as Ctrl-C does, after a failed check
