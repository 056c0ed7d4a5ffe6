"""A real predictor process: drift gauges after traffic, a shift shows up, predictions are logged;
and the in-process cost of monitoring per request."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.config import load_tenant
from mlplatform.monitoring.prediction_log import read_predictions
from mlplatform.processes import free_port, stop
from mlplatform.serving.smoke import newest_rows, v1_body, v1_path
from mlplatform.workspace import Workspace

from tests.serving.server_helpers import start_server, wait_server_ready


@pytest.fixture(scope="module")
def server(trained_fraud, tmp_path_factory):
    folder = tmp_path_factory.mktemp("monitor-tenant")
    raw = yaml.safe_load(trained_fraud.tenant_file.read_text())
    raw["drift"].update(window_rows=150, min_rows=100)  # a small window: the shift shows within a test
    tenant_file = folder / "tenant.yaml"
    tenant_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    port, log = free_port(), folder / "server.log"
    proc = start_server(tenant_file, trained_fraud.home, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_server_ready(proc, base, log)
        cfg = load_tenant(tenant_file)
        with httpx.Client(base_url=base, timeout=10) as client:
            yield {"cfg": cfg, "ws": Workspace(trained_fraud.home), "client": client}
    finally:
        stop(proc)


def drift_gauges(client) -> dict[tuple[str, str], float]:
    out = {}
    for fam in text_string_to_metric_families(client.get("/metrics").text):
        if fam.name in ("mlplatform_drift_psi", "mlplatform_drift_ks"):
            for s in fam.samples:
                assert s.labels["role"] == "stable" and s.labels["tenant"] == "fraud" and s.labels["version"]
                out[(fam.name, s.labels["feature"])] = s.value
    return out


def send(ctx, rows, batch=25, prefix="req"):
    ids = []
    for start in range(0, len(rows), batch):
        rid = f"{prefix}-{uuid.uuid4().hex[:8]}"
        r = ctx["client"].post(v1_path(ctx["cfg"]), json=v1_body(rows[start:start + batch]),
                               headers={"X-Request-ID": rid})
        assert r.status_code == 200, r.text
        ids.append(rid)
    return ids


def test_drift_gauges_appear_after_traffic_and_a_shift_raises_them(server):
    cfg = server["cfg"]
    rows, _ = newest_rows(cfg, server["ws"], 300)
    assert not drift_gauges(server["client"])  # fewer than min_rows: nothing exported yet
    send(server, rows[:150])
    base = drift_gauges(server["client"])
    features = {f for (_, f) in base}
    assert set(cfg.model.features) | {"score"} == features
    assert base[("mlplatform_drift_psi", "amount")] < cfg.drift.psi_threshold
    assert ("mlplatform_drift_ks", "amount") in base
    # a shift in spending behaviour: every amount x4 (within the field's allowed range)
    shifted = [dict(r, amount=min(round(r["amount"] * 4, 2), 5000.0)) for r in rows[150:]]
    send(server, shifted, prefix="shifted")
    after = drift_gauges(server["client"])
    assert after[("mlplatform_drift_psi", "amount")] > cfg.drift.psi_threshold
    assert after[("mlplatform_drift_ks", "amount")] > cfg.drift.ks_threshold


def test_predictions_are_logged_with_the_request_id(server):
    cfg = server["cfg"]
    rows, _ = newest_rows(cfg, server["ws"], 10)
    started = time.time()
    ids = send(server, rows, batch=5, prefix="logged")
    deadline = time.time() + 10
    while time.time() < deadline:
        df = read_predictions(server["ws"], "fraud", role="stable")
        mine = df[df["request_id"].isin(ids)] if len(df) else df
        if len(mine) == 10:
            break
        time.sleep(0.3)
    assert len(mine) == 10
    assert sorted(mine["row"].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert set(mine.columns) >= {"customer_id", "terminal_id", "event_time", "score", "decision", "model_version"}
    assert mine["logged_at"].min().timestamp() >= started - 1
    first = mine[(mine["request_id"] == ids[0]) & (mine["row"] == 0)].iloc[0]
    assert first["customer_id"] == rows[0]["customer_id"]

