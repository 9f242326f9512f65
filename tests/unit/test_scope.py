"""One meaning of "best" (fast tier): tune_config.scope ranks trials the same way in the
progress view, the summary, the table, results.json, the best config and the best checkpoint."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from itwinai_ray.errors import ConfigurationError
from itwinai_ray.report.loading import load_experiment
from itwinai_ray.tuning.progress import ProgressState, format_line
from itwinai_ray.tuning.results import HPOResults
from itwinai_ray.tuning.scope import Scope, score_history
from itwinai_ray.tuning.settings import TuneSettings

#: Trial a improves then overfits (best 0.2 at epoch 2, last 0.6); b ends best (0.3).
HISTORIES = {"a": [0.9, 0.2, 0.6], "b": [0.8, 0.4, 0.3]}


def _history(values: list[float]) -> list[dict]:
    return [{"val_loss": v, "training_iteration": i + 1,
             "checkpoint_dir_name": f"checkpoint_{i:06d}"} for i, v in enumerate(values)]


def _experiment(tmp_path: Path) -> list[SimpleNamespace]:
    """Trial directories as Tune leaves them (result.json, checkpoints) and their results."""
    grid = []
    for n, values in enumerate(HISTORIES.values()):
        trial = tmp_path / f"_trial_fn_abcde_0000{n}_{n}_x=1_2026"
        trial.mkdir()
        history = [{**h, "trial_id": f"abcde_0000{n}"} for h in _history(values)]
        (trial / "result.json").write_text("".join(json.dumps(h) + "\n" for h in history))
        (trial / "params.json").write_text(json.dumps({"x": n}))
        for h in history:
            (trial / h["checkpoint_dir_name"]).mkdir()
        grid.append(SimpleNamespace(metrics={**history[-1], "trial_id": f"abcde_0000{n}"},
                                    config={"x": n}, error=None, path=str(trial),
                                    checkpoint=SimpleNamespace(
                                        path=str(trial / "checkpoint_000002"))))
    return grid


@pytest.mark.parametrize(("text", "expected"), [
    (None, "best"), ("best", "best"), ("all", "best"), ("LAST", "last"),
    ("last-3-avg", "last-3-avg")])
def test_scope_parses(text, expected) -> None:
    assert str(Scope.parse(text)) == expected


@pytest.mark.parametrize("text", ["avg", "last-0-avg", "first", 3])
def test_bad_scope_is_one_clear_error(text) -> None:
    with pytest.raises(ConfigurationError, match="'best' .*'last' .*'last-N-avg'"):
        TuneSettings.from_any({"scope": text})


@pytest.mark.parametrize(("scope", "value", "best_epoch"), [
    ("best", 0.2, 2), ("last", 0.6, 2), ("last-2-avg", 0.4, 2)])
def test_score_history(scope, value, best_epoch) -> None:
    score = score_history(_history(HISTORIES["a"]), "val_loss", "min", Scope.parse(scope))
    assert score.value == pytest.approx(value)
    assert (score.best, score.best_epoch, score.last) == (0.2, best_epoch, 0.6)
    assert score.best_checkpoint == "checkpoint_000001"
    assert score_history([{"loss": 1}], "val_loss", "min", Scope()).value is None


@pytest.mark.parametrize(("scope", "winner", "value"), [("best", "abcde_00000", 0.2),
                                                         ("last", "abcde_00001", 0.3)])
def test_results_summary_table_json_and_checkpoint_agree(tmp_path, scope, winner,
                                                         value) -> None:
    results = HPOResults.from_result_grid(_experiment(tmp_path), "val_loss", "min", ["x"],
                                          max_epochs=3, experiment_path=str(tmp_path),
                                          scope=scope)
    best = results.best
    assert (best.trial_id, best.metric) == (winner, pytest.approx(value))
    assert f"best val_loss={value:.4g} (trial {winner}" in results.summary()
    data = json.loads(results.to_json())
    assert data["scope"] == scope and data["best"]["trial_id"] == winner
    assert data["trials"][0]["best"] == min(HISTORIES["ab"[int(winner[-1])]])
    expected_ckpt = "checkpoint_000001" if scope == "best" else "checkpoint_000002"
    assert Path(best.checkpoint).name == expected_ckpt  # the epoch the scope ranked
    out = io.StringIO()
    results.print_table(Console(file=out, width=200))
    table = out.getvalue()
    assert f"val_loss ({scope})" in table and "at epoch" in table and "last" in table
    # `itwinai-ray results` reads the same directory the same way
    (tmp_path / "itwinai_ray.json").write_text(json.dumps(
        {"metric": "val_loss", "mode": "min", "param_keys": ["x"], "scope": scope,
         "max_iterations": 3}))
    again = load_experiment(tmp_path).results
    assert (again.best.trial_id, again.best.metric) == (winner, pytest.approx(value))
    assert again.best.checkpoint == best.checkpoint


@pytest.mark.parametrize(("scope", "best", "trial"), [("best", 0.2, "a"), ("last", 0.3, "b"),
                                                      ("last-2-avg", 0.35, "b")])
def test_progress_best_follows_the_scope(scope, best, trial) -> None:
    state = ProgressState(metric="val_loss", mode="min", scope=Scope.parse(scope))
    for epoch in range(3):
        for tid, values in HISTORIES.items():
            state.result(tid, epoch + 1, {"val_loss": values[epoch]})
    assert (state.best, state.best_trial) == (pytest.approx(best), trial)
    assert f"{Scope.parse(scope).describe()}): {best:.4g} (trial {trial})" in format_line(state)
