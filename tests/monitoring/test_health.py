"""Each failure that used to turn monitoring off silently is made to happen here, through the real
libraries; the test asserts that its health metric moves (monitoring/health.py), and promtool shows
that the tenant's rendered rule fires on that metric (charts/tenant prometheusrule.yaml, health group).

The metrics live in prometheus-client's process-wide registry, so values are compared before and
after (another test in the process may have counted under the same labels)."""

from __future__ import annotations

import logging
import shutil
import threading

import numpy as np
import pytest
from mlflow import MlflowClient
from prometheus_client import REGISTRY

from mlplatform.config import load_tenant
from mlplatform.monitoring.prediction_log import PredictionLog, predictions_dir, read_predictions
from mlplatform.monitoring.rules import rule_groups
from mlplatform.processes import free_port
from mlplatform.tenants import apply_env_overrides
from mlplatform.verify import promtool
from mlplatform.workspace import Workspace

from tests.conftest import FRAUD_TENANT, require

pytestmark = pytest.mark.usefixtures("restore_tracking_uri")  # the predictors point MLflow at their workspace


def sample(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def assert_fires(tenant_file, alertname: str, input_series: dict[str, str], eval_time: str,
                 quiet_before: str | None = None) -> None:
    """promtool: with these series (name{labels} -> values, one per minute), the tenant's alert is
    firing at eval_time (and not yet at quiet_before)."""
    exe = promtool.find_promtool()
    require(exe, "promtool not found (Debian/Ubuntu: apt-get install prometheus)")
    firing = f'count(ALERTS{{alertname="{alertname}",alertstate="firing"}})'
    checks = [{"expr": firing, "eval_time": eval_time, "exp_samples": [{"labels": "{}", "value": 1}]}]
    if quiet_before:
        checks.append({"expr": firing, "eval_time": quiet_before, "exp_samples": []})
    tests = {"evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [{"series": s, "values": v} for s, v in input_series.items()],
        "promql_expr_test": checks}]}
    ok, out = promtool.test_rules(rule_groups(tenant_file), tests, exe)
    assert ok, out


# --- the prediction log ------------------------------------------------------------------------------


def test_a_prediction_log_that_cannot_write_counts_errors_and_drops_and_the_alerts_fire(tmp_path, caplog):
    ws = Workspace(tmp_path / "home")
    labels = {"tenant": "fraud", "role": "canary"}
    # the role's folder cannot be created: a file stands where it goes (a read-only mode would not
    # stop root, which CI runs as)
    blocker = predictions_dir(ws, "fraud")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    log = PredictionLog(ws, "fraud", "canary", ["customer_id"], flush_seconds=3600, max_buffer=10)
    errors0 = sample("mlplatform_prediction_log_write_errors_total", **labels)
    dropped0 = sample("mlplatform_prediction_log_dropped_rows_total", **labels)
    flushed0 = sample("mlplatform_prediction_log_last_flush_timestamp_seconds", **labels)
    try:
        def record(n: int, rid: str) -> None:
            log.record(rid, "1", {"customer_id": list(range(n))}, np.full(n, 0.5), np.zeros(n, dtype=bool))

        record(5, "a")
        with caplog.at_level(logging.ERROR), pytest.raises(OSError):
            log.flush()
        assert "write failed, 5 rows kept in memory" in caplog.text
        assert sample("mlplatform_prediction_log_write_errors_total", **labels) == errors0 + 1
        assert sample("mlplatform_prediction_log_buffered_rows", **labels) == 5
        record(30, "b")  # 35 rows >= max_buffer: a forced flush fails; beyond 2 x 10 the oldest go
        assert log.dropped == 15
        assert sample("mlplatform_prediction_log_dropped_rows_total", **labels) == dropped0 + 15
        assert sample("mlplatform_prediction_log_write_errors_total", **labels) == errors0 + 2
        assert sample("mlplatform_prediction_log_last_flush_timestamp_seconds", **labels) == flushed0

        blocker.unlink()  # the disk is fixed: the kept rows are written and the flush time moves
        assert log.flush() is not None
        assert len(read_predictions(ws, "fraud", "canary")) == 20
        assert sample("mlplatform_prediction_log_last_flush_timestamp_seconds", **labels) > flushed0
        assert sample("mlplatform_prediction_log_buffered_rows", **labels) == 0
    finally:
        log._stop.set()
    assert_fires(FRAUD_TENANT, "MLPlatformPredictionLogDropping",
                 {series("mlplatform_prediction_log_dropped_rows_total", labels): "0 0 15 15 15"}, "3m", "1m")
    assert_fires(FRAUD_TENANT, "MLPlatformPredictionLogStalled",  # a flush time that stays where it was
                 {series("mlplatform_prediction_log_last_flush_timestamp_seconds", labels): "0x15"}, "11m", "9m")


# --- the row predictor: drift reference, online store ------------------------------------------------


@pytest.fixture(scope="module")
def fraud_copy(trained_fraud, tmp_path_factory):
    """The trained fraud workspace copied: versions and aliases are added to its registry here."""
    home = tmp_path_factory.mktemp("health") / "home"
    shutil.copytree(trained_fraud.home, home, ignore=shutil.ignore_patterns("ray", "predictions"))
    return load_tenant(trained_fraud.tenant_file), Workspace(home)


def test_a_model_without_drift_reference_is_served_with_the_gauge_at_zero_and_the_alert_fires(fraud_copy, caplog):
    from mlplatform.serving.predictor import TenantPredictor

    cfg, ws = fraud_copy
    client = MlflowClient(tracking_uri=ws.mlflow_uri)
    champ = client.get_model_version_by_alias(cfg.name, "champion")
    # the champion's model, registered from a run that logged no drift/reference.json (an older trainer)
    run = client.create_run(client.get_experiment_by_name(cfg.name).experiment_id, run_name="no-reference")
    client.set_terminated(run.info.run_id)
    # the logged model's own location, not its models:/ URI: MLflow resolves that URI with a default
    # MlflowClient(), i.e. whichever tracking URI the process last set, not this workspace's
    source = client.get_logged_model(champ.model_id).artifact_location if champ.model_id else champ.source
    mv = client.create_model_version(cfg.name, source, run_id=run.info.run_id, tags=champ.tags)
    client.set_registered_model_alias(cfg.name, "noref", mv.version)

    missing = TenantPredictor(cfg, ws, alias="noref", role="shadow")
    with caplog.at_level(logging.ERROR):
        assert missing.load()  # serving goes on, without drift gauges ...
    present = TenantPredictor(cfg, ws, role="canary")
    present.load()
    try:
        assert missing.monitor.hist is None and present.monitor.hist is not None
        # ... and says so as a number, and in the log
        gone = {"tenant": cfg.name, "model": cfg.name, "version": str(mv.version), "role": "shadow"}
        assert sample("mlplatform_drift_reference_loaded", **gone) == 0
        assert sample("mlplatform_drift_reference_loaded", tenant=cfg.name, model=cfg.name,
                      version=str(champ.version), role="canary") == 1
        assert f"v{mv.version} (shadow): no drift/reference.json in its MLflow run" in caplog.text
    finally:
        for p in (missing, present):
            p.monitor.log.close()
    assert_fires(FRAUD_TENANT, "MLPlatformDriftReferenceMissing",
                 {series("mlplatform_drift_reference_loaded", gone): "0x10"}, "6m", "4m")


def test_online_store_errors_are_counted_and_serving_recovers(fraud_copy):
    from mlplatform.features.store import OnlineFeatures
    from mlplatform.serving.predictor import FeatureStoreUnavailable, TenantPredictor
    from mlplatform.serving.smoke import newest_rows, v1_body

    cfg, ws = fraud_copy
    pred = TenantPredictor(cfg, ws, role="canary")
    pred.load()
    labels = pred.labels()
    rows, _ = newest_rows(cfg, ws, 3)
    try:
        before = sample("mlplatform_online_store_errors_total", **labels)
        # the store goes away: Redis on a port nobody listens on (Feast's Redis store, redis-py)
        pred.online = OnlineFeatures(apply_env_overrides(cfg, {"MLPLATFORM_REDIS_ADDRESS": f"127.0.0.1:{free_port()}"}),
                                     ws)
        with pytest.raises(FeatureStoreUnavailable, match="online feature store unavailable"):
            pred.predict(v1_body(rows))
        assert sample("mlplatform_online_store_errors_total", **labels) == before + 1
        # the next request reopens the tenant's own store: served again, nothing more counted
        assert len(pred.predict(v1_body(rows))["predictions"]) == 3
        assert sample("mlplatform_online_store_errors_total", **labels) == before + 1
    finally:
        pred.monitor.log.close()


# --- the ranking predictor: item feature refresh ------------------------------------------------------


def test_a_failing_item_feature_refresh_is_counted_the_age_grows_and_the_alert_fires(trained_search, tmp_path):
    from mlplatform.serving.ranking_predictor import RankingPredictor

    home = tmp_path / "home"
    shutil.copytree(trained_search.home, home, ignore=shutil.ignore_patterns("ray", "predictions"))
    cfg, ws = load_tenant(trained_search.tenant_file), Workspace(home)
    pred = RankingPredictor(cfg, ws, role="canary")
    before = set(threading.enumerate())
    pred.load()
    refresher = [t for t in set(threading.enumerate()) - before if t.name == f"{pred.name}-item-features"]
    labels = pred.labels()
    try:
        errors0 = sample("mlplatform_feature_refresh_errors_total", **labels)
        age0 = sample("mlplatform_item_features_age_seconds", **labels)
        assert 0 <= age0 < 600
        served = pred.item_matrix
        pred.cfg = apply_env_overrides(cfg, {"MLPLATFORM_REDIS_ADDRESS": f"127.0.0.1:{free_port()}"})
        assert pred.refresh() is False
        assert sample("mlplatform_feature_refresh_errors_total", **labels) == errors0 + 1
        assert pred.item_matrix is served  # the last good features stay in service
        pred.items_refreshed -= 3600  # as if the refreshes had failed for an hour
        assert sample("mlplatform_item_features_age_seconds", **labels) >= 3600
        pred.cfg = cfg  # the store is back: the next refresh works and the age drops
        assert pred.refresh() is True
        assert sample("mlplatform_item_features_age_seconds", **labels) < 60
        assert sample("mlplatform_feature_refresh_errors_total", **labels) == errors0 + 1
    finally:
        pred.stop()
    # kserve's teardown ends the refresher: an unloaded predictor reads no store
    assert len(refresher) == 1
    refresher[0].join(timeout=10)
    assert not refresher[0].is_alive()
    age = series("mlplatform_item_features_age_seconds", labels)
    assert_fires(trained_search.tenant_file, "MLPlatformItemFeaturesStale", {age: "1700+60x12"}, "9m", "4m")


# --- the quality job ----------------------------------------------------------------------------------


def test_the_quality_record_time_is_exported_and_a_stale_one_fires(tmp_path):
    from mlplatform.monitoring.quality import QualityCollector, write_record

    ws = Workspace(tmp_path / "home")
    collector = QualityCollector(ws)
    times = lambda: [s for f in collector.collect() if f.name == "mlplatform_model_quality_computed_timestamp_seconds"
                     for s in f.samples]
    assert times() == []  # no job has run: MLPlatformQualityJobStale's absent() branch
    write_record(ws, {"tenant": "fraud", "role": "stable", "computed_at": "2026-01-01T00:00:00+00:00", "versions": {}})
    (s,) = times()
    assert s.labels == {"tenant": "fraud", "role": "stable"} and s.value == 1767225600.0
    assert_fires(FRAUD_TENANT, "MLPlatformQualityJobStale", {}, "16m", "14m")
    assert_fires(FRAUD_TENANT, "MLPlatformQualityJobStale",  # a day and a bit old
                 {series("mlplatform_model_quality_computed_timestamp_seconds", s.labels): "-90000x20"}, "16m", "14m")


def test_a_reloaded_model_replaces_its_servers_health_series():
    """A version no longer served must not keep its series (a 0 that alerts forever)."""
    from prometheus_client import CollectorRegistry

    from mlplatform.monitoring.health import HealthMetrics

    registry = CollectorRegistry()
    m = HealthMetrics(registry)
    base = {"tenant": "fraud", "model": "fraud", "role": "stable"}
    m.drift_reference.set(base | {"version": "1"}, lambda: 0.0)
    m.drift_reference.set(base | {"version": "1", "role": "shadow"}, lambda: 1.0)
    assert registry.get_sample_value("mlplatform_drift_reference_loaded", base | {"version": "1"}) == 0
    m.drift_reference.set(base | {"version": "2"}, lambda: 1.0)  # the stable server reloaded v2
    assert registry.get_sample_value("mlplatform_drift_reference_loaded", base | {"version": "1"}) is None
    assert registry.get_sample_value("mlplatform_drift_reference_loaded", base | {"version": "2"}) == 1
    assert registry.get_sample_value("mlplatform_drift_reference_loaded", base | {"version": "1", "role": "shadow"}) == 1
