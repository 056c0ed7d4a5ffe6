"""The predictor through a real kserve ModelServer process: V1, V2, metadata, metrics, bad input,
and training/serving skew against the offline path (Feast online store + transform + trainer)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.config import load_tenant
from mlplatform.features.store import OnlineFeatures, apply_request_transform
from mlplatform.registry.mlflow_registry import connect
from mlplatform.serving.smoke import bad_requests, newest_rows, smoke_test, v1_body, v1_path, v2_body, v2_path
from mlplatform.training.trainers import resolve_trainer
from mlplatform.workspace import Workspace

FRAUD_TENANT = Path(__file__).resolve().parents[2] / "examples" / "fraud" / "tenant.yaml"
# the table's case names, from the fraud tenant file (the row only shapes the bodies)
_DUMMY = {"customer_id": 1, "terminal_id": 1, "amount": 10.0, "tx_datetime": "2024-01-01T00:00:00+00:00"}
BAD_CASES = [b.name for b in bad_requests(load_tenant(FRAUD_TENANT), _DUMMY)]


@pytest.fixture(scope="module")
def ctx(trained_fraud, fraud_server):
    cfg = load_tenant(trained_fraud.tenant_file)
    ws = Workspace(trained_fraud.home)
    mv = connect(ws).get_model_version_by_alias(cfg.name, cfg.serving.model_alias)
    rows, _ = newest_rows(cfg, ws, 8)
    client = httpx.Client(base_url=fraud_server.base_url, timeout=10)
    yield {"cfg": cfg, "ws": ws, "mv": mv, "rows": rows, "client": client}
    client.close()


def post(ctx, path, body=None, content=None, headers=None):
    content = orjson.dumps(body) if content is None else content
    return ctx["client"].post(path, content=content, headers=headers or {"content-type": "application/json"})


def metric_samples(ctx) -> dict[tuple, float]:
    text = ctx["client"].get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) if fam.name.startswith("mlplatform_") for s in fam.samples}


def test_v1_predict_scores_and_decides_with_the_registered_threshold(ctx):
    resp = post(ctx, v1_path(ctx["cfg"]), v1_body(ctx["rows"]))
    assert resp.status_code == 200, resp.text
    preds = resp.json()["predictions"]
    threshold = float(ctx["mv"].tags["threshold"])
    assert len(preds) == len(ctx["rows"])
    for p in preds:
        assert 0.0 <= p["score"] <= 1.0
        assert p["decision"] is (p["score"] >= threshold)
        assert p["model_version"] == str(ctx["mv"].version)
    # the model discriminates: different rows get different scores
    assert len({round(p["score"], 6) for p in preds}) > 1


def test_v2_infer_matches_v1(ctx):
    cfg, rows = ctx["cfg"], ctx["rows"][:3]
    v2 = post(ctx, v2_path(cfg), v2_body(cfg, rows))
    assert v2.status_code == 200, v2.text
    body = v2.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["score"]["datatype"] == "FP64" and outputs["decision"]["datatype"] == "BOOL"
    assert body["model_version"] == str(ctx["mv"].version)
    v1 = [p["score"] for p in post(ctx, v1_path(cfg), v1_body(rows)).json()["predictions"]]
    assert outputs["score"]["data"] == pytest.approx(v1, abs=1e-9)
    threshold = float(ctx["mv"].tags["threshold"])
    assert outputs["decision"]["data"] == [s >= threshold for s in outputs["score"]["data"]]


def test_model_metadata_lists_keys_fields_and_outputs(ctx):
    cfg = ctx["cfg"]
    meta = ctx["client"].get(f"/v2/models/{cfg.name}").json()
    expected = cfg.features.join_keys + [f.name for f in cfg.features.request.fields]
    assert [i["name"] for i in meta["inputs"]] == expected
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["tx_datetime"] == "BYTES"
    assert [o["name"] for o in meta["outputs"]] == ["score", "decision", "cold_start", "missing"]
    assert ctx["client"].get(f"/v2/models/{cfg.name}/ready").json()["ready"] is True


def test_bad_input_table_covers_the_required_cases():
    required = ["malformed JSON", "missing field", "wrong type", "NaN", "inf",
                "empty instances", "wrong content type", "out of range"]
    for word in required:
        assert any(word in name for name in BAD_CASES), word


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_a_4xx_with_an_error_and_the_server_stays_up(ctx, case):
    bad = {b.name: b for b in bad_requests(ctx["cfg"], ctx["rows"][0])}[case]
    resp = ctx["client"].post(bad.path, content=bad.content, headers=bad.headers)
    assert resp.status_code == bad.expect, resp.text
    assert isinstance(resp.json()["error"], str) and resp.json()["error"]
    assert post(ctx, v1_path(ctx["cfg"]), v1_body(ctx["rows"][:1])).status_code == 200


def test_unseen_entities_are_scored_as_cold_start_and_counted(ctx):
    """A new card, a new terminal, both: scored (V1 and V2), the missing views named, and counted;
    the same row with known entities is not cold. A cold row's score is the model's answer to
    missing values (for a low-risk row it can equal the known row's: the trees need not split there)."""
    cfg, mv = ctx["cfg"], ctx["mv"]
    known = ctx["rows"][0]
    rows = [known, {**known, "customer_id": 987654321}, {**known, "terminal_id": 987654321},
            {**known, "customer_id": 987654322, "terminal_id": 987654322}]
    labels = {"tenant": cfg.name, "model": cfg.name, "version": str(mv.version), "role": "stable"}

    def cold(view):
        return metric_samples(ctx).get(("mlplatform_cold_start_rows_total", tuple(sorted((labels | {"view": view}).items()))), 0.0)

    before = {v: cold(v) for v in ("customer_velocity", "terminal_risk")}
    resp = post(ctx, v1_path(cfg), v1_body(rows))
    assert resp.status_code == 200, resp.text
    preds = resp.json()["predictions"]
    assert [p["cold_start"] for p in preds] == [False, True, True, True]
    assert "missing" not in preds[0]
    assert [p.get("missing") for p in preds[1:]] == [["customer_velocity"], ["terminal_risk"],
                                                     ["customer_velocity", "terminal_risk"]]
    assert all(0.0 <= p["score"] <= 1.0 for p in preds)
    assert cold("customer_velocity") - before["customer_velocity"] == 2
    assert cold("terminal_risk") - before["terminal_risk"] == 2

    v2 = post(ctx, v2_path(cfg), v2_body(cfg, rows))
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outputs["cold_start"]["data"] == [False, True, True, True]
    assert outputs["score"]["data"] == pytest.approx([p["score"] for p in preds], abs=1e-9)
    assert outputs["missing"]["data"] == ["", "customer_velocity", "terminal_risk", "customer_velocity,terminal_risk"]


def test_feature_age_is_observed_per_view_for_rows_the_store_had(ctx):
    """mlplatform_feature_age_seconds{view}: one observation per scored row that had a row of the
    view (a cold view observes nothing), valued as the scored event's time minus the row's event
    time, which the online store returns beside the values."""
    cfg, mv = ctx["cfg"], ctx["mv"]
    known = ctx["rows"][0]
    rows = [known, {**known, "customer_id": 987654331}, {**known, "terminal_id": 987654331}]
    labels = {"tenant": cfg.name, "model": cfg.name, "version": str(mv.version), "role": "stable"}

    def age(view, what):
        key = (f"mlplatform_feature_age_seconds_{what}", tuple(sorted((labels | {"view": view}).items())))
        return metric_samples(ctx).get(key, 0.0)

    views = ("customer_velocity", "terminal_risk")
    before = {(v, w): age(v, w) for v in views for w in ("count", "sum")}
    assert post(ctx, v1_path(cfg), v1_body(rows)).status_code == 200
    _, times = OnlineFeatures(cfg, ctx["ws"]).lookup_timed(
        {"customer_id": [r["customer_id"] for r in rows], "terminal_id": [r["terminal_id"] for r in rows]})
    event = pd.Timestamp(known["tx_datetime"]).timestamp()
    for view, present in (("customer_velocity", [0, 2]), ("terminal_risk", [0, 1])):
        assert [i for i, t in enumerate(times[view]) if t is not None] == present
        assert age(view, "count") - before[(view, "count")] == 2
        want = sum(max(0.0, event - times[view][i]) for i in present)
        assert age(view, "sum") - before[(view, "sum")] == pytest.approx(want, abs=1e-3)


def test_smoke_batch_sends_unseen_cards_and_terminals(ctx, fraud_server):
    summary = smoke_test(ctx["cfg"], ctx["ws"], fraud_server.base_url, n=28, v2_every=2)
    assert summary["errors"] == 0, summary
    assert summary["cold_start_rows"] == 4 and summary["cold_start_flagged"] >= 4, summary


def test_metrics_count_successes_and_errors_with_labels(ctx):
    cfg, mv = ctx["cfg"], ctx["mv"]
    labels = {"tenant": cfg.name, "model": cfg.name, "version": str(mv.version), "role": "stable"}

    def key(name, **extra):
        return (name, tuple(sorted((labels | extra).items())))

    before = metric_samples(ctx)
    assert post(ctx, v1_path(cfg), v1_body(ctx["rows"][:2])).status_code == 200
    assert post(ctx, v2_path(cfg), v2_body(cfg, ctx["rows"][:1])).status_code == 200
    assert post(ctx, v1_path(cfg), content=b"{not json").status_code == 400
    after = metric_samples(ctx)

    def delta(k):
        return after.get(k, 0.0) - before.get(k, 0.0)

    assert delta(key("mlplatform_requests_total", status="200")) == 2
    assert delta(key("mlplatform_requests_total", status="400")) == 1
    assert delta(key("mlplatform_request_duration_seconds_count")) == 3
    assert delta(key("mlplatform_prediction_score_count")) == 3  # rows scored
    assert delta(key("mlplatform_request_duration_seconds_bucket", le="+Inf")) == 3
    assert key("mlplatform_prediction_score_bucket", le="1.0") in after


def test_online_scores_equal_the_offline_path(ctx):
    """Training/serving skew: the server's score equals the trainer's predict on features read
    from Feast's online store and the tenant's transform, computed here independently."""
    cfg, ws, mv, rows = ctx["cfg"], ctx["ws"], ctx["mv"], ctx["rows"][:5]
    served = [p["score"] for p in post(ctx, v1_path(cfg), v1_body(rows)).json()["predictions"]]

    keys = cfg.features.join_keys
    feats = OnlineFeatures(cfg, ws).fetch([{k: r[k] for k in keys} for r in rows])
    for field in cfg.features.request.fields:
        values = [r[field.name] for r in rows]
        feats[field.name] = pd.to_datetime(values, utc=True) if field.type == "datetime" else values
    frame = apply_request_transform(cfg, feats)
    trainer = resolve_trainer(cfg.model.trainer)
    model = trainer.load(f"models:/{cfg.name}/{mv.version}")
    offline = np.asarray(trainer.predict(model, frame[cfg.model.features]), dtype=float)
    assert served == pytest.approx(offline.tolist(), abs=1e-6)


def test_smoke_test_reports_no_errors_and_rejects_bad_requests(ctx, fraud_server):
    report = smoke_test(ctx["cfg"], ctx["ws"], fraud_server.base_url, 30, v2_every=5)
    assert report["requests"] == 30 and report["errors"] == 0, report["first_errors"]
    assert report["v2_requests"] == 6 and report["v2_errors"] == 0
    assert report["bad_requests_rejected"] == report["bad_requests"] == len(BAD_CASES), report
    assert report["alive_after"] and report["p99_ms"] >= report["p50_ms"] > 0


def test_refused_routes_answer_json_errors_and_are_counted(ctx, fraud_server):
    """The route guard (a pure ASGI middleware) refuses what this server does not offer, inside the
    request metrics: the repository API (403), explain and versioned routes (404)."""
    cfg, mv = ctx["cfg"], ctx["mv"]
    infer = {"tenant": cfg.name, "model": cfg.name, "version": str(mv.version), "role": "stable", "status": "404"}
    counted = ("mlplatform_requests_total", tuple(sorted(infer.items())))
    before = metric_samples(ctx).get(counted, 0.0)
    cases = [("/v2/repository/models/fraud/unload", 403, "repository API is disabled"),
             (f"/v1/models/{cfg.name}:explain", 404, "no explainer"),
             (f"/v2/models/{cfg.name}/versions/1/infer", 404, "versioned model routes"),
             (f"/v2/models/{cfg.name}/infer?model_version=1", 404, "versioned model routes")]
    for path, status, words in cases:
        resp = post(ctx, path, v2_body(cfg, ctx["rows"][:1]))
        assert resp.status_code == status, (path, resp.text)
        assert words in resp.json()["error"], (path, resp.text)
    # a query string that only mentions the word is not a versioned request
    assert post(ctx, v2_path(cfg) + "?note=model_version", v2_body(cfg, ctx["rows"][:1])).status_code == 200
    assert metric_samples(ctx).get(counted, 0.0) - before == 2  # the two refused inference routes


def test_no_log_line_per_request(ctx, fraud_server):
    """uvicorn's access log and kserve's timing lines (kserve.trace) are off: 20 requests add no line."""
    before = fraud_server.log.read_text()
    for _ in range(20):
        assert post(ctx, v1_path(ctx["cfg"]), v1_body(ctx["rows"][:1])).status_code == 200
    added = fraud_server.log.read_text()[len(before):]
    assert "kserve.trace" not in added and ":predict" not in added, added[-2000:]
