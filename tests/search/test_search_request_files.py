"""The search request files of the cluster walkthrough (examples/search/requests/) are valid for the
served API: each goes to the session's real search model server by the path the docs use."""

from __future__ import annotations

import pytest

from tests.serving.server_helpers import send_request_file

pytestmark = pytest.mark.slow


def test_search_request_files(search_server):
    v1 = send_request_file(search_server.base_url, "search", "v1").json()["predictions"]
    assert [p["query"] for p in v1] == ["black wireless earbuds", "red running shoes"]
    assert len(v1[0]["results"]) == 5 and len(v1[1]["results"]) > 0
    v2 = {o["name"]: o for o in send_request_file(search_server.base_url, "search", "v2").json()["outputs"]}
    assert v2["item_id"]["shape"] == [5]
    assert v2["item_id"]["data"] == [r["item_id"] for r in v1[0]["results"]]
