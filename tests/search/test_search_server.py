"""The ranking predictor in a real ModelServer process: a query in, the top n items with scores and
the model version out; bad input gets a 4xx with {"error": ...}; the Prometheus metrics count it."""

from __future__ import annotations

import httpx
import pytest

from mlplatform.config import load_tenant
from mlplatform.serving.ranking_smoke import bad_requests, smoke_test
from mlplatform.workspace import Workspace

pytestmark = pytest.mark.slow
PREDICT = "/v1/models/search:predict"


def test_query_returns_top_n_with_scores_and_version(search_server):
    resp = httpx.post(search_server.base_url + PREDICT, json={"query": "black wireless earbuds", "n": 7})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    pred = body["predictions"][0]
    assert pred["query"] == "black wireless earbuds" and pred["model_version"] == body["model_version"] == "1"
    results = pred["results"]
    assert [r["rank"] for r in results] == list(range(1, 8))
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert len({r["item_id"] for r in results}) == 7 and all("title" in r for r in results)


def test_batch_of_queries_and_default_n(search_server):
    resp = httpx.post(search_server.base_url + PREDICT,
                      json={"instances": [{"query": "laptop"}, {"query": "red running shoes", "n": 3}]})
    assert resp.status_code == 200, resp.text
    preds = resp.json()["predictions"]
    assert [len(p["results"]) for p in preds] == [10, 3]  # ranking.top_n, then the asked n


def test_v2_request(search_server):
    body = {"inputs": [{"name": "query", "datatype": "BYTES", "shape": [1], "data": ["camera"]},
                       {"name": "n", "datatype": "INT64", "shape": [1], "data": [4]}]}
    resp = httpx.post(search_server.base_url + "/v2/models/search/infer", json=body)
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o for o in resp.json()["outputs"]}
    assert outputs["item_id"]["shape"] == [4] and len(outputs["score"]["data"]) == 4


def test_bad_input_gets_4xx_with_an_error(search_server, trained_search):
    cfg = load_tenant(trained_search.tenant_file)
    with httpx.Client(base_url=search_server.base_url) as client:
        for bad in bad_requests(cfg):
            resp = client.post(bad.path, content=bad.content, headers=bad.headers)
            assert 400 <= resp.status_code < 500, (bad.name, resp.status_code, resp.text)
            assert isinstance(resp.json().get("error"), str), (bad.name, resp.text)
        assert client.get("/v2/health/ready").status_code == 200  # still serving


def test_smoke_test_and_metrics(search_server, trained_search):
    cfg = load_tenant(trained_search.tenant_file)
    smoke = smoke_test(cfg, Workspace.from_env(trained_search.home), search_server.base_url, 20)
    assert smoke["errors"] == 0 and smoke["requests"] == 20 and smoke["mean_results"] == cfg.ranking.top_n
    assert smoke["bad_requests_rejected"] == smoke["bad_requests"] > 10
    metrics = httpx.get(search_server.base_url + "/metrics").text
    ok = [line for line in metrics.splitlines() if line.startswith("mlplatform_requests_total{")
          and 'tenant="search"' in line and 'status="200"' in line]
    bad = [line for line in metrics.splitlines() if line.startswith("mlplatform_requests_total{")
           and 'tenant="search"' in line and 'status="400"' in line]
    assert ok and bad and float(ok[0].rsplit(" ", 1)[1]) >= 20
    assert "mlplatform_request_duration_seconds_bucket" in metrics
