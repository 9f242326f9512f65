"""``itwinai-ray dashboard`` in a real browser, on tutorial 02's run while it trains (issue 17).

The run is tutorial 02 as written but with ``epochs=2`` (4 trials of 2-process DDP groups,
two at a time: about a minute on 2 cores). Once the journal holds a finished trial and a
running one, the dashboard starts on a free loopback port and headless chromium (Debian's
``chromium`` + ``chromium-driver``, installed by ``.ci/run``) reads the rendered pages; after
the run, the page must agree with ``results.json``. The screenshot of the study page goes to
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
from testkit import PYTHON, ROOT, free_port, subprocess_env

HPO = ROOT / "tutorials" / "02-distributed-hpo" / "hpo.yaml"
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


@pytest.mark.timeout(420)
def test_dashboard_shows_the_tutorial_run_live_in_a_browser(tmp_path, browser) -> None:
    log = tmp_path / "run.log"
    experiment = tmp_path / "runs" / STUDY
    with log.open("w") as out:
        run = subprocess.Popen(
            [PYTHON, "-m", "itwinai_ray.cli", "exec-pipeline", "--config", str(HPO),
             f"run_dir={tmp_path / 'runs'}", "epochs=2"],
            cwd=tmp_path, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    dashboard = None
    try:
        _wait_until_live(experiment, run, log)
        dashboard, url = _start_dashboard(experiment)
        _check_live_page(browser, url, experiment)
        assert run.poll() is None, "the run ended before the page was read: not a live view"
        assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
        shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
        _check_final_page(browser, url, experiment, shot)
        assert _stop(dashboard, signal.SIGINT) == 0  # Ctrl-C stops it cleanly
        assert "Traceback" not in dashboard.stderr.read()
    finally:
        if dashboard is not None:
            _stop(dashboard, signal.SIGKILL)
        if run.poll() is None:  # a failed check: stop the run and its Ray as Ctrl-C does
            os.killpg(run.pid, signal.SIGINT)
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
