"""The retraining webhook: payload validation (4xx), one run per incident, cool-down, state."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mlplatform.monitoring.webhook import create_app
from mlplatform.workspace import Workspace

from tests.conftest import write_small_fraud_tenant


class Clock:
    def __init__(self):
        self.t = 1_700_000_000.0

    def __call__(self):
        return self.t


@pytest.fixture
def setup(tmp_path):
    tenant_file = write_small_fraud_tenant(tmp_path / "fraud", **{"retraining": {"cooldown_minutes": 30}})
    calls, active = [], {"on": True}
    clock = Clock()

    def launcher(tenant, path, run_id):
        calls.append((tenant, path, run_id))
        return None

    app = create_app(Workspace(tmp_path / "home"), launcher=launcher, tenant_files={"fraud": tenant_file},
                     clock=clock, is_active=lambda r: active["on"])
    with TestClient(app) as client:
        yield client, calls, active, clock


def alert(name="MLPlatformFeatureDrift", fp="a1", status="firing", **labels):
    return {"status": status, "labels": {"alertname": name, "tenant": "fraud", **labels},
            "annotations": {"summary": "x"}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": fp}


def payload(*alerts, status="firing"):
    return {"version": "4", "status": status, "receiver": "mlplatform-webhook", "groupKey": "g", "alerts": list(alerts)}


def test_one_incident_starts_one_run(setup):
    client, calls, active, _ = setup
    r = client.post("/alerts", json=payload(alert(fp="a1", feature="amount"), alert(fp="a2", feature="tx_hour")))
    assert r.status_code == 200
    assert [x["outcome"] for x in r.json()["results"]] == ["started", "active"]
    # Alertmanager repeats the notification, and the score alert joins while the run is active
    r = client.post("/alerts", json=payload(alert(fp="a1"), alert("MLPlatformScoreDrift", fp="s1")))
    assert [x["outcome"] for x in r.json()["results"]] == ["duplicate", "active"]
    assert len(calls) == 1 and calls[0][0] == "fraud" and calls[0][2].startswith("retrain-")
    runs = client.get("/retrains").json()["retrains"]
    assert len(runs) == 1 and runs[0]["run_id"] == calls[0][2] and runs[0]["alertname"] == "MLPlatformFeatureDrift"
    assert set(runs[0]["fingerprints"]) == {"a1", "a2", "s1"}


def test_cooldown_then_a_new_run(setup):
    client, calls, active, clock = setup
    client.post("/alerts", json=payload(alert(fp="a1")))
    active["on"] = False  # the run finished
    clock.t += 10 * 60
    r = client.post("/alerts", json=payload(alert(fp="b1", feature="amount")))
    assert r.json()["results"][0]["outcome"] == "cooldown"
    r = client.post("/alerts", json=payload(alert(fp="a1")))
    assert r.json()["results"][0]["outcome"] == "duplicate"
    clock.t += 25 * 60  # 35 minutes after the first start: past the 30 minute cool-down
    r = client.post("/alerts", json=payload(alert(fp="b1")))
    assert r.json()["results"][0]["outcome"] == "started"
    assert len(calls) == 2 and calls[0][2] != calls[1][2]


def test_alerts_that_do_not_retrain_are_ignored(setup):
    client, calls, _, _ = setup
    r = client.post("/alerts", json=payload(
        alert("MLPlatformHighLatency", fp="l"), alert(fp="r", status="resolved"),
        {"status": "firing", "labels": {"alertname": "MLPlatformFeatureDrift"}, "fingerprint": "n"},
        alert(fp="u", tenant="nosuchtenant")))
    assert [x["outcome"] for x in r.json()["results"]] == [
        "ignored:not-a-retraining-alert", "ignored:resolved", "ignored:no-tenant-label", "ignored:unknown-tenant"]
    assert calls == []


@pytest.mark.parametrize("body, headers, status", [
    (b"{not json", {"content-type": "application/json"}, 400),
    (b'{"version": "4", "status": "firing", "alerts": []}', {"content-type": "application/json"}, 400),
    (b'{"version": "3", "status": "firing", "alerts": [{"status": "firing", "labels": {}}]}',
     {"content-type": "application/json"}, 400),
    (b'{"version": "4", "status": "firing", "alerts": [{"status": "burning", "labels": {}}]}',
     {"content-type": "application/json"}, 400),
    (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"a": 1}}]}',
     {"content-type": "application/json"}, 400),
    (b"[]", {"content-type": "application/json"}, 400),
    (b"alerts", {"content-type": "text/plain"}, 415),
    (b"{" + b" " * (1 << 20) + b"}", {"content-type": "application/json"}, 413),
], ids=["malformed", "no alerts", "version", "status", "label type", "not an object", "content type", "too large"])
def test_bad_payloads_are_4xx_json(setup, body, headers, status):
    client, calls, _, _ = setup
    r = client.post("/alerts", content=body, headers=headers)
    assert r.status_code == status and r.json()["error"]
    assert calls == []
    assert client.get("/healthz").status_code == 200


def _sample(text: str, series: str) -> float:
    """The value of one series in a /metrics page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_and_unknown_routes(setup):
    client, _, _, _ = setup
    retrains = 'mlplatform_webhook_retrains_total{tenant="fraud"}'
    started = 'mlplatform_webhook_alerts_total{alertname="MLPlatformFeatureDrift",outcome="started",tenant="fraud"}'
    joined = 'mlplatform_webhook_alerts_total{alertname="MLPlatformFeatureDrift",outcome="active",tenant="fraud"}'
    client.post("/alerts", json=payload(alert(fp="a1")))  # starts a run
    client.post("/alerts", json=payload(alert(fp="a2")))  # joins it
    first = client.get("/metrics").text
    assert _sample(first, retrains) >= 1 and _sample(first, started) >= 1
    # Values are compared between two reads: in one test process the series can also carry counts
    # from other app instances (prometheus_client keeps per-process state once kserve is imported).
    client.post("/alerts", json=payload(alert(fp="a3")))  # joins the active run: counted, not started
    second = client.get("/metrics").text
    assert _sample(second, retrains) == _sample(first, retrains)
    assert _sample(second, started) == _sample(first, started)
    assert _sample(second, joined) == _sample(first, joined) + 1
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]
    assert client.get("/alerts").status_code == 405


def test_an_invalid_tenant_file_is_an_error_with_its_message_not_an_unknown_tenant(setup, tmp_path):
    """A typo in the tenant file used to read `ignored:unknown-tenant`, turning retraining off under
    a misleading label. Now: an error outcome with the validation message, counted, exported as
    mlplatform_webhook_tenant_file_valid 0 (MLPlatformTenantFileInvalid fires on it), and back to 1
    once the file is fixed, without waiting for the next alert."""
    client, calls, _, _ = setup
    tenant_file = client.app.state.controller.tenant_files["fraud"]
    good = tenant_file.read_text()
    tenant_file.write_text(good.replace("drift:", "drfit:", 1))
    r = client.post("/alerts", json=payload(alert(fp="t1"), alert(fp="u1", tenant="nosuchtenant")))
    typo, unknown = r.json()["results"]
    assert typo["outcome"] == "error:invalid-tenant-file" and unknown["outcome"] == "ignored:unknown-tenant"
    assert "drfit: unknown key" in typo["error"] and str(tenant_file) in typo["error"]
    assert "error" not in unknown and calls == []
    text = client.get("/metrics").text
    assert _sample(text, 'mlplatform_webhook_tenant_file_errors_total{tenant="fraud"}') == 1
    assert _sample(text, 'mlplatform_webhook_alerts_total{alertname="MLPlatformFeatureDrift",outcome="error",'
                         'tenant="fraud"}') == 1
    assert 'mlplatform_webhook_tenant_file_valid{tenant="fraud"} 0.0' in text
    assert "nosuchtenant" not in text.split("mlplatform_webhook_tenant_file_valid", 1)[1]
    states = client.get("/tenants").json()["tenants"]
    assert states["fraud"]["valid"] is False and "drfit: unknown key" in states["fraud"]["error"]

    tenant_file.write_text(good)  # fixed: valid again on the next scrape, retraining works again
    assert 'mlplatform_webhook_tenant_file_valid{tenant="fraud"} 1.0' in client.get("/metrics").text
    assert client.get("/tenants").json()["tenants"]["fraud"] == {"valid": True, "error": None}
    assert client.post("/alerts", json=payload(alert(fp="t2"))).json()["results"][0]["outcome"] == "started"


def test_a_configured_tenant_file_that_is_missing_is_an_error(tmp_path):
    app = create_app(Workspace(tmp_path / "home"), launcher=lambda *a: None,
                     tenant_files={"fraud": tmp_path / "gone" / "tenant.yaml"})
    with TestClient(app) as client:
        (result,) = client.post("/alerts", json=payload(alert(fp="g"))).json()["results"]
    assert result["outcome"] == "error:invalid-tenant-file" and "does not exist" in result["error"]
