"""The fraud request files the cluster walkthrough sends through the Gateway (examples/fraud/requests/,
docs/cluster.md, the chart's NOTES) are valid for the served API: each goes to a real model server
process, by the path the docs use, and gets a prediction (search: tests/search/test_search_request_files.py)."""

from __future__ import annotations

import json

import pytest

from server_helpers import send_request_file
from tests.conftest import REPO


def test_fraud_request_files(fraud_server):
    v1 = send_request_file(fraud_server.base_url, "fraud", "v1").json()["predictions"]
    instances = json.loads((REPO / "examples/fraud/requests/v1.json").read_text())["instances"]
    assert len(v1) == len(instances) and all(0.0 <= p["score"] <= 1.0 for p in v1)
    v2 = {o["name"]: o for o in send_request_file(fraud_server.base_url, "fraud", "v2").json()["outputs"]}
    # the two files describe the same payments: the same scores
    assert v2["score"]["data"] == pytest.approx([p["score"] for p in v1], abs=1e-9)
