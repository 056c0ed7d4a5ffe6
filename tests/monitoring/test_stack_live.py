"""Live: real Prometheus + Alertmanager + the webhook. A synthetic metric source exposes drift;
the rendered drift alert (its `for:` shortened by an override) fires, Alertmanager posts to the
webhook, and the launcher is called exactly once for the incident."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from mlplatform.monitoring.rules import render_rules
from mlplatform.monitoring.stack import MonitoringStack, find_alertmanager, find_prometheus
from mlplatform.processes import free_port
from mlplatform.monitoring.webhook import start_webhook
from mlplatform.workspace import Workspace

from tests.conftest import FRAUD_TENANT, require

pytestmark = [pytest.mark.service, pytest.mark.slow]


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_drift_alert_reaches_the_webhook_and_starts_one_run(tmp_path):
    require(find_prometheus() and find_alertmanager(),
            "prometheus/alertmanager not found (Debian/Ubuntu: apt-get install prometheus prometheus-alertmanager)")
    # the synthetic predictor: two drifted features and a drifted score (three alerts, one incident)
    registry = CollectorRegistry()
    psi = Gauge("mlplatform_drift_psi", "synthetic", ["tenant", "model", "version", "role", "feature"], registry=registry)
    for feature, value in (("amount", 0.9), ("amount_to_avg_30d", 0.7), ("score", 0.5), ("tx_hour", 0.01)):
        psi.labels("fraud", "fraud", "1", "stable", feature).set(value)
    source_port = free_port()
    source, source_thread = start_http_server(source_port, addr="127.0.0.1", registry=registry)

    calls = []
    ws = Workspace(tmp_path / "home")
    hook = start_webhook(ws, port=free_port(), launcher=lambda t, p, r: calls.append((t, r)),
                         tenant_files={"fraud": FRAUD_TENANT})
    rules = render_rules(FRAUD_TENANT, tmp_path, overrides={"drift": {"for_minutes": 0.05}})  # for: 3s
    stack = MonitoringStack(tmp_path / "stack", rule_files=[rules], webhook_url=f"{hook.url}/alerts",
                            scrape_interval="1s", evaluation_interval="1s", group_wait="1s", group_interval="1s")
    stack.set_targets({"predictors": [f"127.0.0.1:{source_port}"], "monitor": [f"127.0.0.1:{hook.port}"]})
    try:
        stack.start()
        wait_for(lambda: stack.query('mlplatform_drift_psi{feature="amount"}'), 30, "the first scrape")
        assert stack.query('mlplatform_drift_psi{feature="amount"}') == pytest.approx(0.9)
        firing = wait_for(lambda: [a for a in stack.alerts("firing") if a["labels"]["alertname"] ==
                                   "MLPlatformFeatureDrift"], 60, "MLPlatformFeatureDrift firing in Prometheus")
        assert {a["labels"]["feature"] for a in firing} == {"amount", "amount_to_avg_30d"}
        wait_for(lambda: calls, 60, "the webhook to start a retraining run")
        time.sleep(6)  # more notifications arrive: the rest of the group, the score alert, repeats
        assert len(calls) == 1, calls
        assert calls[0][0] == "fraud" and calls[0][1].startswith("retrain-")
        runs = httpx.get(f"{hook.url}/retrains", timeout=5).json()["retrains"]
        assert [r["run_id"] for r in runs] == [calls[0][1]]
        assert runs[0]["alertname"] in {"MLPlatformFeatureDrift", "MLPlatformScoreDrift"}
        # the webhook's own metrics are scraped too
        assert wait_for(lambda: stack.query('sum(mlplatform_webhook_retrains_total{tenant="fraud"})'), 20,
                        "the webhook metrics in Prometheus") == 1
    finally:
        stack.stop()
        hook.stop()
        source.shutdown()
