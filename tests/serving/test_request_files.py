"""The request files the cluster walkthrough sends through the Gateway (examples/<tenant>/requests/,
docs/cluster.md, the chart's NOTES) are valid for the served API: each goes to a real model server
process of the tenant, by the path the docs use, and gets a prediction."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import REPO


def _send(base_url: str, tenant: str, protocol: str) -> httpx.Response:
    path = {"v1": f"/v1/models/{tenant}:predict", "v2": f"/v2/models/{tenant}/infer"}[protocol]
    body = (REPO / "examples" / tenant / "requests" / f"{protocol}.json").read_bytes()
    resp = httpx.post(base_url + path, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 200, f"{tenant} {protocol}: {resp.status_code} {resp.text}"
    return resp


def test_fraud_request_files(fraud_server):
    v1 = _send(fraud_server.base_url, "fraud", "v1").json()["predictions"]
    instances = json.loads((REPO / "examples/fraud/requests/v1.json").read_text())["instances"]
    assert len(v1) == len(instances) and all(0.0 <= p["score"] <= 1.0 for p in v1)
    v2 = {o["name"]: o for o in _send(fraud_server.base_url, "fraud", "v2").json()["outputs"]}
    # the two files describe the same payments: the same scores
    assert v2["score"]["data"] == pytest.approx([p["score"] for p in v1], abs=1e-9)


@pytest.fixture(scope="module")
def search_server(trained_search, tmp_path_factory):
    from server_helpers import running_server

    with running_server(trained_search.tenant_file, trained_search.home, tmp_path_factory.mktemp("search")) as server:
        yield server


@pytest.mark.slow
def test_search_request_files(search_server):
    v1 = _send(search_server.base_url, "search", "v1").json()["predictions"]
    assert [p["query"] for p in v1] == ["black wireless earbuds", "red running shoes"]
    assert len(v1[0]["results"]) == 5 and len(v1[1]["results"]) > 0
    v2 = {o["name"]: o for o in _send(search_server.base_url, "search", "v2").json()["outputs"]}
    assert v2["item_id"]["shape"] == [5]
    assert v2["item_id"]["data"] == [r["item_id"] for r in v1[0]["results"]]
