"""`mlplatform demo` as a user runs it (smaller data): pipeline, serving, smoke test, summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.workspace import Workspace

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--data-arg", "customers=300", "--data-arg", "terminals=600", "--data-arg", "days=40"]


def test_demo_writes_a_complete_summary(tmp_path):
    env = os.environ | {"MLPLATFORM_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "mlplatform.cli", "demo", "fraud", "--runs", str(tmp_path / "runs"),
                           *SMALL], env=env, capture_output=True, text=True, timeout=900,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "latest" / "summary.json").read_text())
    fraud = summary["tenants"]["fraud"]
    assert fraud["validation"]["success"] is True
    assert fraud["validation"]["report"].endswith(".html")
    assert fraud["training"]["rows"] > 1000 and fraud["training"]["seconds"] > 0
    assert fraud["model"]["name"] == "fraud" and fraud["model"]["version"] == "1"
    assert fraud["model"]["aliases"] == ["champion"]
    assert 0.5 < fraud["model"]["metrics"]["roc_auc"] <= 1 and fraud["model"]["metrics"]["pr_auc"] > 0
    assert fraud["serving"]["smoke"]["requests"] > 0 and fraud["serving"]["smoke"]["errors"] == 0
    # the same rows scored online (the server) and offline (point-in-time join, the trainer): equal
    skew = fraud["serving"]["smoke"]["skew"]
    assert "error" not in skew, skew
    assert skew["rows"] == 50 and skew["mismatches"] == 0 and skew["max_abs_score_diff"] <= skew["tolerance"]
    assert summary["seconds"] > 0 and summary["profile"] == "embedded"  # zero set-up: SQLite and files
    assert (tmp_path / "home" / "mlflow.db").exists()
    # the pipeline's tasks (kfp.local) each wrote their step record
    ws, run_id = Workspace(tmp_path / "home"), fraud["run_id"]
    for step in ("ingest", "validate", "features", "stage", "train", "register"):
        assert ws.step_file("fraud", run_id, step).exists(), step
    # every stage timed: wall (as shown, KFP start-up included) and inside the step
    steps = ["ingest", "validate", "features", "stage", "train", "register"]
    assert list(fraud["stages_wall"]) == steps + ["serve_and_smoke"]
    assert all(fraud["stages_wall"][s] >= fraud["stages"][s] > 0 for s in steps)
    assert "fraud" in proc.stdout and "summary" in proc.stdout
    # a second run keeps the first one and registers a new version
    proc = subprocess.run([sys.executable, "-m", "mlplatform.cli", "demo", "fraud", "--runs", str(tmp_path / "runs"),
                           *SMALL], env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = [p for p in (tmp_path / "runs").iterdir() if p.name != "latest"]
    assert len(runs) == 2
    second = json.loads((tmp_path / "runs" / "latest" / "summary.json").read_text())
    assert second["tenants"]["fraud"]["model"]["version"] == "2"
