"""Prediction log round trip and the delayed-label quality job on a constructed case."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from mlplatform.config import load_tenant
from mlplatform.monitoring.prediction_log import PredictionLog, read_predictions
from mlplatform.monitoring.quality import QualityCollector, quality_file
from mlplatform.tasks import task_for
from mlplatform.workspace import Workspace

from tests.conftest import FRAUD_TENANT

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def log_traffic(ws, n=400, version="3", seed=0):
    rng = np.random.default_rng(seed)
    log = PredictionLog(ws, "fraud", "stable", ["customer_id", "terminal_id"], "tx_datetime", flush_seconds=60)
    labels = rng.random(n) < 0.1
    scores = np.clip(labels * 0.5 + rng.random(n) * 0.6, 0, 1)  # informative, not perfect
    times = [T0 + timedelta(minutes=i) for i in range(n)]
    for i in range(n):
        cols = {"customer_id": [i % 50], "terminal_id": [i], "tx_datetime": [times[i]], "amount": [10.0]}
        log.record(f"r{i}", version, cols, scores[i:i + 1], scores[i:i + 1] >= 0.5)
    log.close()
    events = pd.DataFrame({"customer_id": [i % 50 for i in range(n)], "terminal_id": range(n),
                           "tx_datetime": times, "is_fraud": labels.astype(int),
                           "label_available_at": [t + timedelta(days=7) for t in times]})
    return scores, labels, events


def test_prediction_log_round_trip(tmp_path):
    ws = Workspace(tmp_path)
    before = datetime.now(timezone.utc)
    scores, _, _ = log_traffic(ws, n=20)
    df = read_predictions(ws, "fraud", role="stable")
    assert len(df) == 20 and df["request_id"].tolist() == [f"r{i}" for i in range(20)]
    assert df["score"].to_numpy() == pytest.approx(scores)
    assert str(df["event_time"].dt.tz) == "UTC" and (df["model_version"] == "3").all()
    assert len(read_predictions(ws, "fraud", since=before - timedelta(seconds=1))) == 20
    assert len(read_predictions(ws, "fraud", since=datetime.now(timezone.utc) + timedelta(hours=1))) == 0
    assert read_predictions(ws, "nosuch").empty


def test_quality_job_joins_delayed_labels_and_exports(tmp_path):
    from sklearn.metrics import average_precision_score

    cfg = load_tenant(FRAUD_TENANT)
    ws = Workspace(tmp_path)
    scores, labels, events = log_traffic(ws)
    # labels of the last 100 events are not known yet at as_of
    as_of = T0 + timedelta(minutes=300) + timedelta(days=7)
    rec = task_for(cfg).quality_job(cfg, ws, as_of=as_of, events=events)
    assert rec["predictions"] == 400 and rec["labelled"] == 301
    q = rec["versions"]["3"]
    assert q["labelled_rows"] == 301
    assert q["pr_auc"] == pytest.approx(average_precision_score(labels[:301], scores[:301]))
    assert json.loads(quality_file(ws, "fraud").read_text())["versions"]["3"]["pr_auc"] == q["pr_auc"]
    samples = {(s.name, s.labels.get("metric")): s.value for fam in QualityCollector(ws).collect() for s in fam.samples}
    assert samples[("mlplatform_model_quality", "pr_auc")] == pytest.approx(q["pr_auc"])
    assert samples[("mlplatform_model_quality_labelled_rows", None)] == 301


def test_ambiguous_label_matches_are_dropped(tmp_path):
    cfg = load_tenant(FRAUD_TENANT)
    ws = Workspace(tmp_path)
    _, _, events = log_traffic(ws, n=50)
    dup = pd.concat([events, events.iloc[[5]]], ignore_index=True)
    rec = task_for(cfg).quality_job(cfg, ws, as_of=T0 + timedelta(days=30), events=dup)
    assert rec["labelled"] == 49


def test_rows_buffered_at_exit_are_written(tmp_path):
    """A process that exits before the first periodic flush keeps what it logged (close() at exit)."""
    import subprocess
    import sys

    code = ("import numpy as np\n"
            "from mlplatform.monitoring.prediction_log import PredictionLog\n"
            "from mlplatform.workspace import Workspace\n"
            f"log = PredictionLog(Workspace({str(tmp_path)!r}), 'fraud', 'stable', ['customer_id'], flush_seconds=600)\n"
            "for i in range(3):\n"
            "    log.record(f'r{i}', '1', {'customer_id': list(range(500))}, np.zeros(500), np.zeros(500))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(read_predictions(Workspace(tmp_path), "fraud", role="stable")) == 1500


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path):
    ws = Workspace(tmp_path)
    log = PredictionLog(ws, "fraud", "stable", ["customer_id"], flush_seconds=600)
    folder = log.sink.folder
    (tmp_path / "blocked").write_text("a file where the log wants a folder")
    log.sink.folder = tmp_path / "blocked" / "stable"
    log.record("r0", "1", {"customer_id": [1, 2]}, np.array([0.1, 0.2]), np.array([False, False]))
    with pytest.raises(OSError):
        log.flush()
    log.sink.folder = folder  # the disk is back
    log.record("r1", "1", {"customer_id": [3]}, np.array([0.3]), np.array([False]))
    log.close()
    df = read_predictions(ws, "fraud", role="stable")
    assert df["request_id"].tolist() == ["r0", "r0", "r1"] and log.dropped == 0
