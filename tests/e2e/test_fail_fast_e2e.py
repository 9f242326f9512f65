"""``run_config.fail_fast`` on a real local Ray (issue 15, point 7): a trainer whose every
trial raises the same AttributeError before reporting stops the experiment after 2 trials; a
second trial that fails differently, or after reporting, lets the experiment run every trial.
The rule itself: tests/unit/test_fail_fast.py.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from recording_trainers import RecordingTrainer

from itwinai_ray.errors import TrialsFailedError

BUG = "AttributeError: 'NoneType' object has no attribute 'forward'"


# ------------------------------------------------------------------- real Ray (slow)
class BuggyTrainer(RecordingTrainer):
    """RecordingTrainer whose ``fault`` can also be ``bug`` (the same AttributeError before
    the first report, in every trial, while the file ``bug_file`` exists: delete it to "fix
    the bug") or ``other`` (a ValueError before the first report). Each trial appends
    ``start <trial_id>`` to ``record_file`` when it starts training."""

    def train_epoch(self) -> Any:
        fault = self.config.get("fault")
        if self.current_epoch == 0:
            with open(self.config.get("record_file"), "a") as fh:
                fh.write(f"start {self._trial_id()}\n")
        if fault == "bug" and Path(self.config["bug_file"]).exists():
            return self.model.no_such_layer  # AttributeError, same message in every trial
        if fault == "other":
            raise ValueError("a different failure")
        return super().train_epoch()


def _started(tmp_path: Path) -> list[str]:
    path = tmp_path / "records.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[1] for line in lines if line.startswith("start ")]


def _experiment(tmp_path: Path, name: str, faults: list[str], digits_split: Any,
                resume: bool = False) -> Any:
    from itwinai_ray.integrations.ray_trainer import RayTorchTrainer

    bug_file = tmp_path / "bug"
    if not resume:
        bug_file.touch()
    trainer = BuggyTrainer(
        config={"batch_size": 64, "optim_lr": 0.01, "hidden_size": 16, "fault": "none",
                "record_file": str(tmp_path / "records.txt"), "bug_file": str(bug_file)},
        epochs=2, random_seed=0)
    hpo = RayTorchTrainer(  # one trial at a time: they end in grid order
        trainer=trainer, scaling_config={"num_workers": 1},
        tune_config={"num_samples": 1, "metric": "loss", "mode": "min",
                     "max_concurrent_trials": 1},
        run_config={"storage_path": str(tmp_path / "results"), "name": name,
                    "min_free_disk_gb": 0, "progress": False, "mlflow": False,
                    "resume": resume},
        search_space={"fault": {"type": "grid_search", "values": faults}})
    return hpo.execute(*digits_split)[-1]


RAY_CPUS = 4  # the local Ray of tests/e2e/conftest.py's ray_cluster


@pytest.mark.timeout(120)
def test_the_same_early_bug_in_the_first_two_trials_stops_the_experiment(
        ray_cluster, tmp_path, digits_split, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="itwinai_ray.backends.ray.fail_fast")
    with pytest.raises(TrialsFailedError, match="All 2 trials failed.*AttributeError"):
        _experiment(tmp_path, "bug", ["bug"] * 4, digits_split)

    assert len(set(_started(tmp_path))) == 2, _started(tmp_path)  # not all 4 ran
    lines = [r.getMessage() for r in caplog.records if r.name == "itwinai_ray.backends.ray.fail_fast"]
    assert len(lines) == 1, lines
    assert lines[0].count("AttributeError:") == 1 and "no_such_layer" in lines[0]
    path = lines[0].split("(see ")[1].split(")")[0]
    assert path.startswith(str(tmp_path / "results" / "bug")) and path.endswith("error.txt")
    assert "no_such_layer" in Path(path).read_text()  # the log it names exists

    # Bug fixed, --resume: the 2 failed trials run again and finish. Tune restores its
    # stopper from the saved state: it must not bring the old decision back.
    (tmp_path / "bug").unlink()
    results = _experiment(tmp_path, "bug", ["bug"] * 4, digits_split, resume=True)
    assert sorted((r.status, r.epochs) for r in results.rows) == [("finished", 2)] * 2
    assert len([r for r in caplog.records if r.name == "itwinai_ray.backends.ray.fail_fast"]) == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("second", ["other", "raise"], ids=["other error", "after report"])
def test_a_second_trial_that_fails_otherwise_keeps_the_experiment_going(
        ray_cluster, tmp_path, digits_split, caplog, second) -> None:
    caplog.set_level(logging.ERROR, logger="itwinai_ray.backends.ray.fail_fast")
    results = _experiment(tmp_path, f"keeps-{second}", ["bug", second, "bug", "none"],
                          digits_split)

    assert len(set(_started(tmp_path))) == 4
    statuses = Counter(r.status for r in results.rows)
    assert statuses == {"error": 3, "finished": 1}, statuses
    assert not [r for r in caplog.records if r.name == "itwinai_ray.backends.ray.fail_fast"]
