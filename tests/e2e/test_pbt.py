"""PBT on the real trainer: an exploited trial resumes from another trial's checkpoint with a
perturbed learning rate, and its optimizer really uses the new lr (``apply_changed_hparams``).

Everything is asserted from each trial's own record (``resumes.jsonl``, written by the
trainer in its worker, see ``tests/search_trainers.py``) and its reported metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RAY_CPUS = 4  # the local Ray of tests/e2e/conftest.py's ray_cluster


@pytest.mark.timeout(300)
def test_pbt_exploit_resumes_another_trials_checkpoint_with_a_new_lr(
        ray_cluster, tmp_path, digits_split) -> None:
    run_and_check_pbt(tmp_path, digits_split, {"num_workers": 1}, {})


def run_and_check_pbt(tmp_path, digits_split, scaling_config: dict, tune_extra: dict) -> None:
    """Run the PBT experiment with these scaling and extra tune settings, and check it (also
    used by test_pool_e2e: PBT on pooled 2-worker trials)."""
    from search_trainers import RecordingDigitsTrainer

    from itwinai_ray.integrations.ray_trainer import RayTorchTrainer

    trainer = RayTorchTrainer(
        trainer=RecordingDigitsTrainer(config={"hidden_size": 16, "batch_size": 64,
                                               "epoch_sleep": 0.4,
                                               "record_dir": str(tmp_path)},
                                       epochs=6, random_seed=0),
        scaling_config=scaling_config,
        tune_config={"num_samples": 4, "metric": "val_loss", "mode": "min",
                     "scheduler": {"name": "pbt", "perturbation_interval": 1,
                                   "quantile_fraction": 0.25, "resample_probability": 0.0},
                     **tune_extra},
        run_config={"storage_path": str(tmp_path), "name": "pbt"},
        search_space={"optim_lr": {"type": "loguniform", "lower": 1e-4, "upper": 0.1}},
    )
    *_, results = trainer.execute(*digits_split)
    assert len(results.rows) == 4 and all(r.status != "error" for r in results.rows)

    path = tmp_path / "resumes.jsonl"
    records = ([json.loads(line) for line in path.read_text().splitlines()]
               if path.is_file() else [])
    exploits = [r for r in records if r["from"] != r["trial"]]
    assert exploits, f"PBT made no exploit; resumes: {records}"
    for e in exploits:
        assert e["epoch"] >= 0  # a mid-training checkpoint of the other trial
        # perturbed: PBT multiplies by 0.8 or 1.2 (resample_probability 0), clipped to the
        # search space's bounds
        perturbed = [min(max(e["lr_in_checkpoint"] * f, 1e-4), 0.1) for f in (0.8, 1.2)]
        assert e["config_lr"] == pytest.approx(perturbed[0]) or \
            e["config_lr"] == pytest.approx(perturbed[1]), e
        # the optimizer state came from the checkpoint, the lr from the new config
        assert e["optimizer_lr"] == pytest.approx(e["config_lr"])
    by_id = {row.trial_id: row for row in results.rows}
    _check_histories(tmp_path, by_id)
    last_epoch = 5  # checkpoints count epochs from 0; epochs=6
    for trial in {e["trial"] for e in exploits}:
        row = by_id[trial]
        assert row.metrics["epoch"] == 6  # exploiting trials continue to the end
        # a trial's row shows the config that produced its reported metrics
        assert row.config["optim_lr"] == pytest.approx(row.metrics["seen_lr"])
        last = [e for e in exploits if e["trial"] == trial][-1]
        if last["epoch"] < last_epoch:  # it trained on after its last exploit
            assert row.config["optim_lr"] == pytest.approx(last["config_lr"])
        else:
            # An exploit of the last epoch's checkpoint (PBT may exploit on the final report)
            # restores a finished state: nothing trains or reports after it, and Tune gives
            # the trial the results of that checkpoint, config included (Trial.on_restore):
            # the row shows the state the trial ended with, and the lr that trained it.
            assert row.config["optim_lr"] == pytest.approx(last["lr_in_checkpoint"])


def _check_histories(tmp_path, rows: dict) -> None:
    """Each trial's ``result.json`` holds every report it made, in order (``reports.jsonl``:
    the trainer's record of its reports), also across the pauses and restores of PBT."""
    from itwinai_ray.tuning.results import read_history

    records = [json.loads(line)
               for line in (tmp_path / "reports.jsonl").read_text().splitlines()]
    for trial_id, row in rows.items():
        logged = [report["epoch"] for report in read_history(Path(row.path))]
        reported = [r["epoch"] + 1 for r in records if r["trial"] == trial_id]
        assert logged == reported, (trial_id, logged, reported)
