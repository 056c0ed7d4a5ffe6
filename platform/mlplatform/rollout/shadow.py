"""Shadow agreement: stable and shadow predictions of the same requests, joined by request id.

nginx sends the same `X-Request-ID` with a request and its mirrored copy, so the prediction log
(mlplatform.monitoring.prediction_log: request_id, time, role, model_version, score, decision)
holds both answers. Exported from the rollout controller as
`mlplatform_shadow_agreement{tenant, metric}` with metric in
    score_mean_abs_diff   mean |score_shadow - score_stable|
    decision_agreement    share of requests with the same decision
    rank_overlap          ranking tenants (an `items` column of ranked ids): mean |A ∩ B| / max(|A|, |B|)
    pairs                 number of joined requests
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, start_http_server


def agreement(predictions: pd.DataFrame) -> dict[str, float]:
    """Agreement metrics of one prediction-log frame (rows of every role); {} without pairs."""
    need = {"request_id", "role", "score"}
    if predictions.empty or not need <= set(predictions.columns):
        return {}
    df = predictions.dropna(subset=["request_id"])
    key = ["request_id", "row"] if "row" in df.columns else ["request_id"]  # a request may hold several rows
    stable = df[df["role"] == "stable"].drop_duplicates(key).set_index(key)
    shadow = df[df["role"] == "shadow"].drop_duplicates(key).set_index(key)
    joined = stable.join(shadow, how="inner", lsuffix="_stable", rsuffix="_shadow")
    if joined.empty:
        return {}
    out = {"pairs": float(len(joined)),
           "score_mean_abs_diff": float((joined["score_shadow"] - joined["score_stable"]).abs().mean())}
    if "decision" in df.columns:
        out["decision_agreement"] = float((joined["decision_stable"].astype(bool)
                                           == joined["decision_shadow"].astype(bool)).mean())
    if "items" in df.columns:
        def overlap(a: Any, b: Any) -> float:
            a, b = set(a or ()), set(b or ())
            return len(a & b) / max(len(a), len(b)) if (a or b) else 1.0
        out["rank_overlap"] = float(sum(overlap(a, b) for a, b in zip(joined["items_stable"], joined["items_shadow"]))
                                    / len(joined))
    return out


def read_agreement(ws, tenant: str, since=None) -> dict[str, float] | None:
    """From the workspace's prediction log; None when the log (or its reader) is not available."""
    try:
        from mlplatform.monitoring.prediction_log import read_predictions
    except ImportError:
        return None
    try:
        frame = read_predictions(ws, tenant, since=since)
    except FileNotFoundError:
        return None
    return agreement(frame)


class ShadowExporter:
    """The controller's own /metrics: the agreement gauges, in a registry of their own."""

    def __init__(self, tenant: str, port: int | None = None, registry: CollectorRegistry | None = None):
        self.tenant = tenant
        self.registry = registry or CollectorRegistry()
        self.gauge = Gauge("mlplatform_shadow_agreement", "Agreement between shadow and stable predictions",
                           ["tenant", "metric"], registry=self.registry)
        self.server = None
        if port is not None:
            self.server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.gauge.labels(tenant=self.tenant, metric=name).set(value)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
