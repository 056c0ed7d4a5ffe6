from __future__ import annotations

import httpx
import pandas as pd
import pytest

from mlplatform.processes import free_port
from mlplatform.rollout.shadow import ShadowExporter, agreement


def frame():
    rows = []
    for i in range(4):
        rows.append({"request_id": f"r{i}", "row": 0, "role": "stable", "score": 0.1 * i, "decision": i >= 2})
        rows.append({"request_id": f"r{i}", "row": 0, "role": "shadow", "score": 0.1 * i + 0.05, "decision": i >= 3})
    rows.append({"request_id": "only-stable", "row": 0, "role": "stable", "score": 0.9, "decision": True})
    return pd.DataFrame(rows)


def test_agreement_joins_by_request_id():
    m = agreement(frame())
    assert m["pairs"] == 4
    assert m["score_mean_abs_diff"] == pytest.approx(0.05)
    assert m["decision_agreement"] == pytest.approx(0.75)


def test_rank_overlap_and_empty():
    df = pd.DataFrame([{"request_id": "q", "role": "stable", "score": 1.0, "items": ["a", "b", "c", "d"]},
                       {"request_id": "q", "role": "shadow", "score": 1.0, "items": ["a", "b", "x", "y"]}])
    assert agreement(df)["rank_overlap"] == pytest.approx(0.5)
    assert agreement(pd.DataFrame(columns=["request_id", "role", "score"])) == {}


def test_exporter_serves_the_gauges():
    port = free_port()
    exporter = ShadowExporter("fraud", port)
    try:
        exporter.update(agreement(frame()))
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'mlplatform_shadow_agreement{metric="decision_agreement",tenant="fraud"} 0.75' in text
    finally:
        exporter.close()
