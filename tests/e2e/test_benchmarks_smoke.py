"""The benchmark suite's plumbing (CLI, table, JSON) on its smallest real item.

Runs ``python -m benchmarks --quick --only throughput`` (a few seconds of real training, no
Ray) and checks the table and the JSON it writes. No timing assertions: speed claims live in
the benchmarks themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from testkit import ROOT, subprocess_env


@pytest.mark.timeout(120)
def test_suite_quick_throughput_writes_table_and_json(tmp_path):
    out = tmp_path / "res.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "throughput", "--out", str(out)],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "item" in proc.stdout and "target" in proc.stdout and "met?" in proc.stdout
    assert "4 in-trial throughput" in proc.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["quick"] is True and data["meta"]["items"] == ["throughput"]
    assert isinstance(data["meta"]["load1_start"], float)
    rows = data["results"]
    assert [r["name"] for r in rows] == ["trainer/plain (CPU time)", "trainer/plain (wall time)"]
    for row in rows:
        assert row["value"] > 0 and row["target"] == ">= 0.95"
        assert row["met"] == (row["value"] >= 0.95)
    details = rows[0]["details"]
    assert details["plain_samples_per_s_cpu"] > 0 and details["trainer_samples_per_s_cpu"] > 0


def test_suite_rejects_unknown_item():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nope"], cwd=ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "invalid choice: 'nope'" in proc.stderr and "overhead" in proc.stderr
