"""Training and the MLflow registry: what a run holds, the lineage of a registered version, the time
split and label availability, and the promotion gate applied by the registry (never deleting anything)."""

from __future__ import annotations

import os

import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from mlplatform.config import load_tenant, parse_tenant
from mlplatform.registry import mlflow_registry
from mlplatform.training.dataset import labelled_as_of, time_split
from mlplatform.training.xgboost_trainer import load_model, predict
from mlplatform.workspace import Workspace
from tests.conftest import FRAUD_TENANT, write_small_fraud_tenant


@pytest.fixture(autouse=True)
def _restore_tracking_uri(monkeypatch):
    """mlflow_registry.connect sets a process-wide tracking URI: put it back for other tests."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)
    # set_tracking_uri also exports MLFLOW_TRACKING_URI, which every later Workspace would obey;
    # drop it (monkeypatch puts back a value the environment had before this test)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="module")
def session(trained_fraud):
    ws = Workspace(trained_fraud.home)
    client = MlflowClient(tracking_uri=f"sqlite:///{trained_fraud.home / 'mlflow.db'}")
    return trained_fraud, ws, client


# --- the training run -------------------------------------------------------------------------


def test_run_has_params_and_metrics(session):
    tf, ws, client = session
    run = client.get_run(tf.records["train"]["run_id"])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert int(params["train_rows"]) == tf.records["train"]["train_rows"] > 0
    assert int(params["valid_rows"]) == tf.records["train"]["valid_rows"] > 0
    assert params["trainer"] == "mlplatform.training.xgboost_trainer:trainer"
    cfg = load_tenant(tf.tenant_file)
    assert params["features"] == ",".join(cfg.model.features)
    assert params["param.max_depth"] == "5"
    # imbalance: auto, and fraud's training rows hold hundreds of positives: unweighted (xgboost_trainer.py)
    assert "param.scale_pos_weight" not in params and cfg.model.imbalance == "auto"
    metrics = run.data.metrics
    for key in ("pr_auc", "roc_auc", "threshold", "recall_at_fpr_0.01", "expected_cost_per_event"):
        assert key in metrics, key
    own = tf.records["train"]["metrics"]  # the model's own; baselines and intervals have keys of their own
    assert {k: metrics[k] for k in own} == pytest.approx(own)
    assert 0 < metrics["pr_auc"] <= 1 and 0.5 < metrics["roc_auc"] <= 1
    assert 0 < metrics["threshold"] < 1
    assert run.data.tags["data_snapshot"] == tf.records["ingest"]["sha256"]
    assert run.data.tags["pipeline_run_id"] == tf.run_id


def test_run_has_plots_and_the_validation_report(session):
    tf, ws, client = session
    run_id = tf.records["train"]["run_id"]
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/pr_curve.png", "plots/feature_importance.png"}
    reports = [a.path for a in client.list_artifacts(run_id, "validation")]
    assert reports == [f"validation/{Path(tf.records['validate']['report']).name}"]
    assert reports[0].endswith(".html")
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots/pr_curve.png",
                                                     tracking_uri=client._tracking_client.tracking_uri))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_has_signature_and_input_example(session):
    tf, ws, client = session
    mlflow_registry.connect(ws)
    cfg = load_tenant(tf.tenant_file)
    uri = tf.records["train"]["model_uri"]
    info = mlflow.models.get_model_info(uri)
    assert info.run_id == tf.records["train"]["run_id"]
    assert info.signature is not None
    assert info.signature.inputs.input_names() == cfg.model.features  # in the model's order
    assert info.saved_input_example_info is not None
    model = mlflow.models.Model.load(uri)
    example = model.load_input_example(mlflow.artifacts.download_artifacts(uri))
    assert list(example.columns) == cfg.model.features and len(example) > 0
    # the registered champion loads by alias and scores the example
    booster = load_model(f"models:/{cfg.name}@champion")
    scores = predict(booster, example)
    assert scores.shape == (len(example),) and np.all((scores >= 0) & (scores <= 1))


def test_registered_version_has_lineage_and_is_champion(session):
    tf, ws, client = session
    reg = tf.records["register"]
    assert reg["version"] == "1" and reg["aliases"] == ["champion"] and reg["passed"]
    mv = client.get_model_version("fraud", "1")
    assert mv.run_id == tf.records["train"]["run_id"]
    assert "champion" in mv.aliases
    assert str(client.get_model_version_by_alias("fraud", "champion").version) == "1"
    tags = mv.tags
    assert tags["data_snapshot"] == tf.records["ingest"]["sha256"]
    assert len(tags["data_snapshot"]) == 64
    assert tags["pipeline_run_id"] == tf.run_id
    assert tags["feature_views"] == "customer_velocity,terminal_risk"
    assert tags["code_version"] == tf.records["train"]["code_version"] and tags["code_version"]
    assert tags["trainer"] == "mlplatform.training.xgboost_trainer:trainer"
    assert float(tags["threshold"]) == pytest.approx(tf.records["train"]["metrics"]["threshold"])
    assert tags["gate"].startswith("passed: ")
    assert "rejected_reason" not in tags


def test_data_snapshot_hash_matches_the_ingested_partitions(session):
    from mlplatform.data.ingest import fingerprint

    tf, ws, client = session
    raw = ws.raw_dir("fraud")
    assert fingerprint(sorted(raw.rglob("*.parquet")), raw) == tf.records["ingest"]["sha256"]


# --- which rows a model learns from -----------------------------------------------------------


@pytest.fixture(scope="module")
def fraud_raw() -> dict:
    return yaml.safe_load(FRAUD_TENANT.read_text())


def _cfg(fraud_raw, validation_days=3, gap_days=0):
    raw = dict(fraud_raw)
    raw["model"] = dict(raw["model"], split={"validation_days": validation_days, "gap_days": gap_days})
    return parse_tenant(raw)


def _daily(days=10, per_day=4) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=days * per_day, freq=pd.Timedelta(hours=24 / per_day), tz="UTC")
    df = pd.DataFrame({"tx_datetime": ts, "is_fraud": np.arange(len(ts)) % 2})
    return df.sample(frac=1.0, random_state=0)  # the split must not rely on the input order


def test_time_split_trains_on_older_rows_than_it_validates_on(fraud_raw):
    df = _daily()
    train, valid = time_split(_cfg(fraud_raw, validation_days=3), df)
    assert len(train) + len(valid) == len(df)
    assert train["tx_datetime"].max() < valid["tx_datetime"].min()
    end = df["tx_datetime"].max()
    assert valid["tx_datetime"].min() >= end - pd.Timedelta(days=3)
    assert len(valid) == 3 * 4 + 1  # the newest three days, boundary included


def test_time_split_gap_drops_rows_between_train_and_validation(fraud_raw):
    df = _daily()
    train, valid = time_split(_cfg(fraud_raw, validation_days=3, gap_days=2), df)
    assert valid["tx_datetime"].min() - train["tx_datetime"].max() > pd.Timedelta(days=2)
    assert len(train) + len(valid) == len(df) - 2 * 4


def test_time_split_refuses_an_empty_side(fraud_raw):
    with pytest.raises(ValueError, match="empty set"):
        time_split(_cfg(fraud_raw, validation_days=30), _daily(days=10))


def test_labelled_as_of_excludes_labels_arriving_later(fraud_raw):
    cfg = _cfg(fraud_raw)
    t = pd.Timestamp("2026-01-10 12:00", tz="UTC")
    raw = pd.DataFrame({
        "transaction_id": [0, 1, 2, 3],
        "tx_datetime": [t - pd.Timedelta(days=5), t - pd.Timedelta(days=1), t - pd.Timedelta(hours=1),
                        t + pd.Timedelta(hours=1)],
        "label_available_at": [t - pd.Timedelta(days=2), t + pd.Timedelta(days=3), t, t + pd.Timedelta(days=2)],
        "is_fraud": [1, 1, 0, 0],
    })
    kept = labelled_as_of(cfg, raw, t)
    # 0: labelled before t; 1: label arrives later; 2: label arrives exactly at t; 3: the event is after t
    assert list(kept["transaction_id"]) == [0, 2]
    assert list(labelled_as_of(cfg, raw, t + pd.Timedelta(days=3))["transaction_id"]) == [0, 1, 2, 3]


def test_training_used_only_labels_known_at_the_end_of_the_data(session):
    tf, ws, client = session
    from mlplatform.data.ingest import load_raw

    cfg = load_tenant(tf.tenant_file)
    raw = load_raw(cfg, ws)
    as_of = raw["tx_datetime"].max()
    expected = int((pd.to_datetime(raw["label_available_at"], utc=True) <= as_of).sum())
    assert tf.records["train"]["rows"] == expected < len(raw)  # the newest, unlabelled events are left out
    params = client.get_run(tf.records["train"]["run_id"]).data.params
    assert pd.Timestamp(params["as_of"]) == as_of


# --- the registry's promotion gate, on a copy of the session's registry -----------------------


@pytest.fixture
def registry_copy(session, tmp_path):
    """A home with a copy of the session's MLflow store: mutate it without touching the shared champion."""
    tf, _, _ = session
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy2(tf.home / "mlflow.db", home / "mlflow.db")
    shutil.copytree(tf.home / "mlartifacts", home / "mlartifacts")
    ws = Workspace(home)
    return tf, ws, MlflowClient(tracking_uri=ws.mlflow_uri)


def _versions(client, name="fraud") -> dict[str, object]:
    return {str(mv.version): mv for mv in client.search_model_versions(f"name='{name}'")}


def _lineage(tf) -> dict[str, str]:
    return {"data_snapshot": tf.records["ingest"]["sha256"], "pipeline_run_id": "again"}


def test_registering_again_makes_a_challenger_and_keeps_the_champion(registry_copy):
    tf, ws, client = registry_copy
    cfg = load_tenant(tf.tenant_file)
    before = _versions(client)
    assert set(before) == {"1"}
    reg = mlflow_registry.register(cfg, ws, tf.records["train"]["run_id"], tf.records["train"]["model_uri"],
                                   _lineage(tf))
    assert reg.passed and reg.version == "2" and reg.aliases == ["challenger"]
    after = _versions(client)
    assert set(after) == {"1", "2"}
    assert str(client.get_model_version_by_alias("fraud", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("fraud", "challenger").version) == "2"
    v2 = client.get_model_version("fraud", "2")
    assert v2.tags["compared_with"] == "v1"
    assert v2.tags["pipeline_run_id"] == "again"
    assert v2.tags["gate"].startswith("passed: ") and "champion" in v2.tags["gate"]
    # the original version is untouched
    assert client.get_model_version("fraud", "1").tags == before["1"].tags
    # ... and so is the session's own registry
    shared = MlflowClient(tracking_uri=f"sqlite:///{tf.home / 'mlflow.db'}")
    assert set(_versions(shared)) == {"1"}


def test_candidate_below_a_minimum_is_registered_without_alias(registry_copy, tmp_path):
    tf, ws, client = registry_copy
    strict = load_tenant(write_small_fraud_tenant(tmp_path / "strict", **{"metrics.gates.minimum.pr_auc": 0.999}))
    before = _versions(client)
    reg = mlflow_registry.register(strict, ws, tf.records["train"]["run_id"], tf.records["train"]["model_uri"],
                                   _lineage(tf))
    assert not reg.passed and reg.aliases == []
    after = _versions(client)
    assert set(after) == set(before) | {reg.version} and len(after) == len(before) + 1
    mv = client.get_model_version("fraud", reg.version)
    assert mv.aliases == []
    assert "pr_auc" in mv.tags["rejected_reason"] and "0.9990" in mv.tags["rejected_reason"]
    assert mv.tags["gate"].startswith("rejected: ")
    assert str(client.get_model_version_by_alias("fraud", "champion").version) == "1"
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias("fraud", "challenger")


def test_candidate_regressing_beyond_tolerance_is_rejected(registry_copy):
    tf, ws, client = registry_copy
    cfg = load_tenant(tf.tenant_file)
    champion = dict(client.get_run(tf.records["train"]["run_id"]).data.metrics)
    # a candidate run that passes the minimums but falls 0.05 below the champion's PR-AUC (tolerance 0.02)
    exp = client.get_experiment_by_name("fraud")
    run = client.create_run(exp.experiment_id, run_name="worse")
    client.log_metric(run.info.run_id, "pr_auc", champion["pr_auc"] - 0.05)
    client.log_metric(run.info.run_id, "roc_auc", champion["roc_auc"])
    client.set_terminated(run.info.run_id)
    assert champion["pr_auc"] - 0.05 > cfg.metrics.gates.minimum["pr_auc"]

    n = len(_versions(client))
    reg = mlflow_registry.register(cfg, ws, run.info.run_id, tf.records["train"]["model_uri"], _lineage(tf))
    assert not reg.passed and reg.aliases == []
    mv = client.get_model_version("fraud", reg.version)
    assert mv.tags["rejected_reason"].startswith("pr_auc")
    assert "champion" in mv.tags["rejected_reason"]
    assert len(_versions(client)) == n + 1
    assert str(client.get_model_version_by_alias("fraud", "champion").version) == "1"


def _candidate_run(client, metrics: dict[str, float], tags: dict[str, str] | None = None) -> str:
    run = client.create_run(client.get_experiment_by_name("fraud").experiment_id, run_name="candidate", tags=tags or {})
    for k, v in metrics.items():
        client.log_metric(run.info.run_id, k, v)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_gate_compares_with_the_champion_scored_on_the_same_rows(registry_copy):
    """A newer validation window can be harder for every model: what counts is the champion on the
    candidate's rows (logged as champion_* by training), not the champion's own recorded figure."""
    tf, ws, client = registry_copy
    cfg = load_tenant(tf.tenant_file)
    recorded = dict(client.get_run(tf.records["train"]["run_id"]).data.metrics)
    harder = {"pr_auc": recorded["pr_auc"] - 0.05, "roc_auc": recorded["roc_auc"] - 0.01}
    champ_here = {"champion_pr_auc": harder["pr_auc"] - 0.01, "champion_roc_auc": harder["roc_auc"]}
    run_id = _candidate_run(client, harder | champ_here, {"champion_evaluated": "1"})
    reg = mlflow_registry.register(cfg, ws, run_id, tf.records["train"]["model_uri"], _lineage(tf))
    assert reg.passed and reg.aliases == ["challenger"], reg.decision
    mv = client.get_model_version("fraud", reg.version)
    assert mv.tags["compared_with"] == "v1" and mv.tags["compared_on"] == "same validation rows"
    assert f"{champ_here['champion_pr_auc']:.4f}" in mv.tags["gate"]

    # scored against another version than the current champion: only the recorded figures are left,
    # from another window, and the gate refuses to promote on them
    run_id = _candidate_run(client, harder | champ_here, {"champion_evaluated": "7"})
    reg = mlflow_registry.register(cfg, ws, run_id, tf.records["train"]["model_uri"], _lineage(tf))
    assert not reg.passed and "pr_auc" in reg.decision
    assert "the training run scored v7, but v1 is the champion now" in reg.decision
    assert client.get_model_version("fraud", reg.version).tags["compared_on"] == "champion's own validation rows"


def test_a_champion_that_cannot_be_rescored_is_recorded_and_the_gate_refuses_it(registry_copy, caplog):
    """Scoring the champion raises: training goes on, the exception is logged with its traceback,
    the run records champion_rescore_failed=1 and why, and the gate refuses to promote on the
    champion's recorded figures unless the tenant file allows it."""
    from mlplatform.registry import champion_eval
    from mlplatform.registry.loading import load_by_alias
    from mlplatform.training.champion import evaluate_champion

    tf, ws, client = registry_copy
    cfg = load_tenant(tf.tenant_file)
    _, _, model = load_by_alias(cfg, ws, "champion")
    frame = pd.DataFrame({f: ["n/a"] * 5 for f in model.feature_names})  # xgboost cannot score text
    champ = evaluate_champion(cfg, ws, frame, lambda m, predict, feats: {"pr_auc": float(predict(m, frame[feats]).mean())})
    assert champ.version == "1" and champ.metrics is None and "raised" in champ.error
    assert any(r.exc_info for r in caplog.records if "could not be scored" in r.getMessage())

    recorded = dict(client.get_run(tf.records["train"]["run_id"]).data.metrics)
    better = {"pr_auc": recorded["pr_auc"] + 0.01, "roc_auc": recorded["roc_auc"]}  # passes on the numbers
    tags, metrics = champion_eval.run_fields(champ.version, champ.metrics, champ.error)
    run_id = _candidate_run(client, better | metrics, tags)
    assert client.get_run(run_id).data.metrics[champion_eval.FAILED] == 1.0
    reg = mlflow_registry.register(cfg, ws, run_id, tf.records["train"]["model_uri"], _lineage(tf))
    assert not reg.passed and reg.aliases == []
    reason = client.get_model_version("fraud", reg.version).tags["rejected_reason"]
    assert "refused" in reason and champ.error[:60] in reason and "allow_recorded_champion_metrics" in reason

    gates = cfg.metrics.gates.model_copy(update={"allow_recorded_champion_metrics": True})
    allowed = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"gates": gates})})
    reg = mlflow_registry.register(allowed, ws, run_id, tf.records["train"]["model_uri"], _lineage(tf))
    assert reg.passed and reg.aliases == ["challenger"], reg.decision
    assert "allowed by metrics.gates.allow_recorded_champion_metrics" in reg.decision


def test_champion_is_scored_on_given_rows_or_skipped_with_a_reason(session, caplog):
    from mlplatform.training.champion import evaluate_champion

    tf, ws, _ = session
    cfg = load_tenant(tf.tenant_file)
    from mlplatform.registry.loading import load_by_alias

    _, _, model = load_by_alias(cfg, ws, "champion")  # the workspace's own store, whatever ran before
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((50, len(model.feature_names))), columns=model.feature_names)
    scored = evaluate_champion(cfg, ws, frame, lambda m, predict, feats: {"n": float(len(predict(m, frame[feats])))})
    assert scored.version == "1" and scored.metrics == {"n": 50.0} and scored.error is None
    skipped = evaluate_champion(cfg, ws, frame.drop(columns=[model.feature_names[0]]), lambda *a: {"n": 1.0})
    assert skipped.version == "1" and skipped.metrics is None and model.feature_names[0] in skipped.error
    assert model.feature_names[0] in caplog.text
